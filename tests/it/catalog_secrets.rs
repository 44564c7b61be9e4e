//! DEP-3 (cap): the rollout's confirmation token is a secret from the
//! environment, set in the request body only when it is sent. It is never an
//! argument, the rendering names its variable instead of its value, and an
//! answer that echoes it shows it redacted.

use crate::support::{args, config_enabling, parse_authorize_render, shipped_catalog_env, unique, FakeApi};
use opsbot::catalog::{Action, Catalog};
use opsbot::exec::{Executor, Limits};
use serde_json::json;

fn catalog(api: &str) -> Catalog {
    shipped_catalog_env(&config_enabling("", "cap"), &[("OPSBOT_TARGET_CAP_API", api)])
}

#[test]
fn the_token_is_not_an_argument_and_is_rendered_by_name() {
    let c = catalog("http://127.0.0.1:1");
    let cfg = config_enabling("", "cap");
    let shown = parse_authorize_render(&c, &cfg, "cap", "console:bob", "/deploy advance");
    assert_eq!(
        shown,
        "cap:deploy advance {} (write, sre/tech-lead, approval sre/tech-lead/eng-manager)\n\
         http cap_api: POST /api/deployment/advance-phase\n\
         body: {\"confirmationToken\":\"[secret CAP_ADVANCE_TOKEN]\"}"
    );
    let typed = parse_authorize_render(
        &c,
        &cfg,
        "cap",
        "console:bob",
        "/deploy advance --confirmationToken x",
    );
    assert!(typed.starts_with("usage error:"), "{typed}");
}

#[tokio::test]
async fn the_token_comes_from_the_environment_and_is_redacted() {
    let token = "tok-advance-0123456789";
    // The answer echoes the token, as a careless API might.
    let api = FakeApi::start(&[(
        "POST",
        "/api/deployment/advance-phase",
        json!({"phase": "50%", "accepted": token}),
    )])
    .await;
    let mut c = catalog(&api.url);
    // A variable of this test's own (the shipped one is CAP_ADVANCE_TOKEN).
    let var = unique("OPSBOT_TEST_ADVANCE").to_uppercase();
    let cmd = c
        .commands
        .iter_mut()
        .find(|x| x.profile == "cap" && x.name == "deploy advance")
        .unwrap();
    let Action::Http(h) = &mut cmd.action else {
        panic!("an http action")
    };
    h.body_secrets.insert("confirmationToken".into(), var.clone());
    let action = cmd.action.clone();
    let ex = Executor::new(Limits::default(), vec![], crate::support::bot_env(&[]));
    let err = ex.execute(&action, &c.targets, &args(&[])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "target cap_api: body field confirmationToken needs environment variable {var} (or {var}_FILE), which is not set"
        )
    );
    assert!(api.take().is_empty(), "nothing is sent without the token");
    let ex = Executor::new(
        Limits::default(),
        vec![],
        crate::support::bot_env(&[(&var, token)]),
    );
    let out = ex.execute(&action, &c.targets, &args(&[])).await.unwrap();
    let sent = api.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body, Some(json!({"confirmationToken": token})));
    assert_eq!(out.fields["accepted"], "[redacted]");
    assert!(!out.text.contains(token), "{}", out.text);
    assert_eq!(out.fields["phase"], "50%");
}

#[test]
fn body_secrets_are_checked_at_load() {
    let roles: std::collections::BTreeSet<String> = ["anyone".to_string()].into();
    let problems = |http: &str| {
        let text = format!(
            "[target.api]\nkind = \"http\"\nurl = \"http://127.0.0.1:1\"\n\n[command.t.\"c\"]\nsummary = \"c\"\n\
             risk = \"read\"\nroles = [\"anyone\"]\naction = {{ http = {{ target = \"api\", path = \"/x\", {http} }} }}\n"
        );
        let ctx = opsbot::catalog::Context {
            roles: &roles,
            env: &Default::default(),
        };
        match opsbot::catalog::load_str("t.toml", &text, &ctx) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(problems("body_secrets = { token = \"T_1\" }"), "");
    assert_eq!(
        problems("body = { a = 1 }, body_secrets = { token = \"T_1\" }"),
        ""
    );
    let p = problems("body_secrets = { token = \"$(id)\" }");
    assert!(p.contains("`$(id)` is not an environment variable name"), "{p}");
    let p = problems("body = { token = \"typed\" }, body_secrets = { token = \"T_1\" }");
    assert!(
        p.contains("body field `token` is both in body and in body_secrets"),
        "{p}"
    );
    let p = problems("body = [1], body_secrets = { token = \"T_1\" }");
    assert!(p.contains("body_secrets set fields of a JSON object body"), "{p}");
}
