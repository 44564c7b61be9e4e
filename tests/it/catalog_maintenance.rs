//! The SQL maintenance rows (runbooks.md D-14..D-17) of the queue, cap, chat
//! and pdf profiles: VACUUM ANALYZE, REINDEX CONCURRENTLY, REINDEX DATABASE
//! and the seeds' CREATE INDEX CONCURRENTLY. None of them can run inside a
//! transaction and none takes `$n` parameters, so their tables and indexes
//! are enum values written in as quoted identifiers. Each is rendered for
//! sample invocations (one snapshot, injection attempts included), then run
//! against Postgres: in a private schema, or a private database for REINDEX
//! DATABASE. An enum value holding SQL stays one identifier.

use crate::support::{args, config, render_sections, run_shipped, shipped_catalog_env, PgDatabase, PgSchema};
use opsbot::catalog::{self, Catalog};
use opsbot::exec::{quote_ident, Executor, Limits};
use std::collections::{BTreeSet, HashMap};

/// A dba (the shared people have none), with cap and pdf enabled too.
fn cfg() -> opsbot::config::Config {
    let mut c = config("[people.dana]\nconsole = \"dana\"\nroles = [\"dba\"]\n");
    c.profiles.extend(["cap".to_string(), "pdf".to_string()]);
    c
}

/// The shipped catalog with every profile's database at `db`.
fn catalog(db: &str) -> Catalog {
    let vars = ["QUEUE_DB", "CAP_DB", "CHAT_DB", "PDF_DB"].map(|t| format!("OPSBOT_TARGET_{t}"));
    let env: Vec<(&str, &str)> = vars.iter().map(|v| (v.as_str(), db)).collect();
    shipped_catalog_env(&cfg(), &env)
}

#[test]
fn every_maintenance_command_parses_authorizes_and_renders() {
    let catalog = catalog("postgres://127.0.0.1:1/appdb");
    let per_profile: [(&str, &[(&str, &str)]); 4] = [
        (
            "queue",
            &[
                ("console:alice", "/db vacuum"),
                ("console:alice", "/db vacuum scenes"),
                ("console:alice", "/db vacuum \"scenes; DROP TABLE projects\""),
                ("console:alice", "/db vacuum 'scenes\"'"),
                ("console:dave", "/db vacuum"),
                ("console:bob", "/db reindex index idx_scenes_project_id"),
                // What Discord sends for its `/db reindex index` subcommand.
                ("console:bob", "/db reindex index --name=idx_scenes_project_id"),
                ("console:dana", "/db reindex table scenes"),
                ("console:bob", "/db reindex table \"scenes CONCURRENTLY\""),
                ("console:bob", "/db reindex view scenes"),
                ("console:alice", "/db reindex table scenes"),
                ("console:dana", "/db reindex database"),
                ("console:bob", "/db reindex database"),
            ],
        ),
        (
            "cap",
            &[
                ("console:alice", "/db vacuum reports"),
                ("console:bob", "/db reindex index idx_reports_project_created"),
                ("console:bob", "/db reindex table queue_jobs"),
                ("console:dana", "/db reindex database"),
                ("console:dana", "/db create-index idx_reports_project_created"),
                ("console:dana", "/db create-index idx_queue_jobs_status_created"),
                (
                    "console:dana",
                    "/db create-index \"idx_x ON reports (id); DROP TABLE reports\"",
                ),
                ("console:bob", "/db create-index idx_reports_project_created"),
            ],
        ),
        (
            "chat",
            &[
                ("console:alice", "/db vacuum messages"),
                ("console:alice", "/db vacuum"),
                (
                    "console:dana",
                    "/db create-index idx_messages_conversation_created",
                ),
            ],
        ),
        (
            "pdf",
            &[
                ("console:alice", "/db vacuum processing_jobs"),
                ("console:dana", "/db create-index idx_processing_jobs_status"),
            ],
        ),
    ];
    insta::assert_snapshot!(render_sections(&catalog, &cfg(), &per_profile));
}

#[test]
fn identifiers_are_quoted_whole() {
    for (name, quoted) in [
        ("scenes", "\"scenes\""),
        ("Scenes", "\"Scenes\""),
        ("a\"b", "\"a\"\"b\""),
        ("x\"; DROP TABLE y; --", "\"x\"\"; DROP TABLE y; --\""),
    ] {
        assert_eq!(quote_ident(name).unwrap(), quoted, "{name}");
    }
    assert!(quote_ident("").is_err());
    assert!(quote_ident("a\0b").is_err());
}

/// `relfilenode` of `rel`: a REINDEX gives an index a new one.
async fn filenode(pool: &sqlx::PgPool, rel: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT relfilenode::int8 FROM pg_class WHERE oid = $1::regclass")
        .bind(rel)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `reltuples` of `rel`: -1 until VACUUM or ANALYZE first counts it.
async fn reltuples(pool: &sqlx::PgPool, rel: &str) -> f32 {
    sqlx::query_scalar::<_, f32>("SELECT reltuples FROM pg_class WHERE oid = $1::regclass")
        .bind(rel)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The queue seed's tables and index (003 §4.3), 50 scenes.
async fn queue_schema() -> PgSchema {
    let s = PgSchema::new().await;
    for sql in [
        "CREATE TABLE SCHEMA.projects (id int PRIMARY KEY)",
        "CREATE TABLE SCHEMA.scenes (id int PRIMARY KEY, project_id int)",
        "CREATE INDEX idx_scenes_project_id ON SCHEMA.scenes (project_id)",
        "INSERT INTO SCHEMA.scenes SELECT g, g % 5 FROM generate_series(1, 50) g",
    ] {
        s.exec(sql).await;
    }
    s
}

#[tokio::test]
async fn vacuum_and_reindex_run_outside_a_transaction() {
    let s = queue_schema().await;
    let c = catalog(&s.url);
    let scenes = format!("{}.scenes", s.name);
    assert_eq!(reltuples(&s.pool, &scenes).await, -1.0);
    let out = run_shipped(&c, "queue", "db vacuum", &[("table", "scenes")])
        .await
        .unwrap();
    assert_eq!(out.summary, "sql: 0 rows");
    assert_eq!(reltuples(&s.pool, &scenes).await, 50.0);

    let index = format!("{}.idx_scenes_project_id", s.name);
    let before = filenode(&s.pool, &index).await;
    run_shipped(
        &c,
        "queue",
        "db reindex",
        &[("k", "index"), ("name", "idx_scenes_project_id")],
    )
    .await
    .unwrap();
    let after_index = filenode(&s.pool, &index).await;
    assert_ne!(before, after_index, "REINDEX INDEX rebuilt it");
    run_shipped(&c, "queue", "db reindex", &[("k", "table"), ("name", "scenes")])
        .await
        .unwrap();
    assert_ne!(
        after_index,
        filenode(&s.pool, &index).await,
        "REINDEX TABLE rebuilt its index"
    );
    // The server refuses an index name given as a table; nothing else happens.
    let err = run_shipped(&c, "queue", "db reindex", &[("k", "index"), ("name", "scenes")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not an index"), "{err}");
    s.drop().await;
}

#[tokio::test]
async fn create_index_builds_the_seed_index_once() {
    let s = PgSchema::new().await;
    s.exec("CREATE TABLE SCHEMA.messages (id int PRIMARY KEY, conversation_id int, created_at timestamptz)")
        .await;
    let c = catalog(&s.url);
    let valid = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = 'idx_messages_conversation_created'",
        )
        .bind(&s.name)
        .fetch_optional(&s.pool)
        .await
        .unwrap()
    };
    assert_eq!(valid().await, None);
    let i = [("i", "idx_messages_conversation_created")];
    run_shipped(&c, "chat", "db create-index", &i).await.unwrap();
    assert_eq!(valid().await, Some(true));
    // IF NOT EXISTS: a second run succeeds and changes nothing.
    run_shipped(&c, "chat", "db create-index", &i).await.unwrap();
    assert_eq!(valid().await, Some(true));
    s.drop().await;
}

#[tokio::test]
async fn reindex_database_rebuilds_the_dsn_database() {
    let d = PgDatabase::new().await;
    d.exec("CREATE TABLE reports (id int PRIMARY KEY, project_id int, created_at timestamptz)")
        .await;
    let c = catalog(&d.url);
    let before = filenode(&d.pool, "reports_pkey").await;
    let out = run_shipped(&c, "cap", "db reindex database", &[]).await.unwrap();
    assert_eq!(out.summary, "sql: 0 rows");
    assert_ne!(before, filenode(&d.pool, "reports_pkey").await);
    d.drop().await;
}

#[tokio::test]
async fn an_enum_value_holding_sql_stays_one_identifier() {
    let s = PgSchema::new().await;
    let evil = "evil\"; DROP TABLE keep; --";
    s.exec("CREATE TABLE SCHEMA.keep (id int)").await;
    s.exec(&format!(
        "CREATE TABLE SCHEMA.{} AS SELECT 1 AS x",
        quote_ident(evil).unwrap()
    ))
    .await;
    let text = format!(
        "[target.db]\nkind = \"sql\"\nurl = \"{}\"\n\n[command.t.\"vacuum\"]\nsummary = \"v\"\n\
         args = {{ table = {{ kind = \"enum\", values = ['{evil}'] }} }}\nrisk = \"write\"\nroles = [\"oncall\"]\n\
         action = {{ sql = {{ target = \"db\", query = \"VACUUM (ANALYZE) {{table}}\", identifiers = [\"table\"], transaction = false }} }}\n",
        s.url
    );
    let c = load(&text).expect("catalog");
    let cmd = c.get("t", "vacuum").unwrap();
    let exec = Executor::new(Limits::default(), vec![], crate::support::bot_env(&[]));
    exec.execute(&cmd.action, &c.targets, &args(&[("table", evil)]))
        .await
        .unwrap();
    let evil_table = format!("{}.{}", quote_ident(&s.name).unwrap(), quote_ident(evil).unwrap());
    assert_eq!(
        reltuples(&s.pool, &evil_table).await,
        1.0,
        "the table named by the value was vacuumed"
    );
    assert_eq!(
        reltuples(&s.pool, &format!("{}.keep", s.name)).await,
        -1.0,
        "keep is still there"
    );
    s.drop().await;
}

#[test]
fn discord_lists_each_kind_of_reindex_beside_reindex_database() {
    let c = catalog("postgres://127.0.0.1:1/appdb");
    let commands = opsbot::chat::discord::register::commands(&c, &["queue".to_string()]).expect("maps");
    let db = commands.iter().find(|c| c["name"] == "db").expect("/db");
    let options = db["options"].as_array().unwrap();
    let reindex = options.iter().find(|o| o["name"] == "reindex").expect("reindex");
    assert_eq!(reindex["type"], 2, "a subcommand group");
    let subs: Vec<&str> = reindex["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(subs, ["database", "index", "table"]);
    let index = &reindex["options"][1];
    let names: Vec<&str> = index["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["name"], "k is the subcommand, not an option");
}

fn load(text: &str) -> Result<Catalog, catalog::CheckError> {
    let roles: BTreeSet<String> = ["anyone", "oncall", "dba", "sre"].map(String::from).into();
    catalog::load_str(
        "t.toml",
        text,
        &catalog::Context {
            roles: &roles,
            env: &HashMap::new(),
        },
    )
}

/// The problems of a one-command catalog whose command has `args` and `action`.
fn problems(args: &str, action: &str, extra: &str) -> String {
    let text = format!(
        "[target.db]\nkind = \"sql\"\nurl = \"postgres://127.0.0.1:1/x\"\n\n[command.t.\"c\"]\nsummary = \"c\"\n\
         args = {args}\nrisk = \"write\"\nroles = [\"oncall\"]\naction = {action}\n{extra}"
    );
    match load(&text) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn identifiers_and_variants_are_checked_at_load() {
    let sql = |q: &str, ids: &str| {
        format!("{{ sql = {{ target = \"db\", query = \"{q}\", identifiers = {ids} }} }}")
    };
    let text_arg = "{ t = { kind = \"string\" } }";
    let enum_arg = "{ t = { kind = \"enum\", values = [\"a\", \"b\"] } }";
    let optional = "{ t = { kind = \"enum\", values = [\"a\", \"b\"], optional = true } }";
    assert!(problems(enum_arg, &sql("VACUUM {t}", "[\"t\"]"), "").is_empty());
    let p = problems(text_arg, &sql("VACUUM {t}", "[\"t\"]"), "");
    assert!(p.contains("identifier `t` is a string argument"), "{p}");
    let p = problems(enum_arg, &sql("VACUUM", "[\"t\"]"), "");
    assert!(
        p.contains("identifier `t` does not appear in the query as `{t}`"),
        "{p}"
    );
    let p = problems(enum_arg, &sql("VACUUM {u}", "[\"u\"]"), "");
    assert!(p.contains("identifier `u` is not a defined argument"), "{p}");

    let choice = |v: &str| {
        format!("{{ value = \"{v}\", action = {{ sql = {{ target = \"db\", query = \"SELECT '{v}'\" }} }} }}")
    };
    let variants = |by: &str, values: &[&str]| {
        let choices: Vec<String> = values.iter().map(|v| choice(v)).collect();
        format!(
            "{{ variants = {{ by = \"{by}\", choices = [{}] }} }}",
            choices.join(", ")
        )
    };
    assert!(problems(enum_arg, &variants("t", &["a", "b"]), "").is_empty());
    let p = problems(enum_arg, &variants("t", &["a"]), "");
    assert!(p.contains("`t` may be `b`, which has no action"), "{p}");
    let p = problems(enum_arg, &variants("t", &["a", "b", "c"]), "");
    assert!(p.contains("`c` is not a value of `t` (a, b)"), "{p}");
    let p = problems(enum_arg, &variants("t", &["a", "b", "a"]), "");
    assert!(p.contains("`a` has two actions"), "{p}");
    let p = problems(optional, &variants("t", &["a", "b"]), "");
    assert!(
        p.contains("which may be absent: make it required or give it a default"),
        "{p}"
    );
    let p = problems(text_arg, &variants("t", &["a"]), "");
    assert!(p.contains("a string argument: only an enum"), "{p}");
    // Each choice is checked like any action, named by its value.
    let bad = format!(
        "{{ variants = {{ by = \"t\", choices = [{}, {{ value = \"b\", action = {{ sql = {{ target = \"nope\", query = \"SELECT 1\" }} }} }}] }} }}",
        choice("a")
    );
    let p = problems(enum_arg, &bad, "");
    assert!(p.contains("t = b: unknown target `nope`"), "{p}");

    // A preview is read in a read-only transaction: never outside one.
    let preview = "approve = { roles = [\"sre\"] }\npreview = { what = \"rows\", action = { sql = { target = \"db\", query = \"SELECT 1\", transaction = false } } }\n";
    let p = problems(enum_arg, &sql("VACUUM {t}", "[\"t\"]"), preview);
    assert!(
        p.contains("preview: must be read-only: an sql preview runs in a read-only transaction"),
        "{p}"
    );
}
