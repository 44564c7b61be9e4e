//! Which process a preview may run: a program that only reads. Pure.
//!
//! A preview runs before anyone approved anything, so its process must not
//! change what it looks at. Only these programs qualify, each with the
//! arguments that would make it write refused:
//! - `find`, without an action that deletes, runs or writes (`-delete`,
//!   `-exec`, `-execdir`, `-ok`, `-okdir`, `-fprint`, `-fprint0`,
//!   `-fprintf`, `-fls`);
//! - `ls`, `stat`, `du`;
//! - `mongosh` with `--nodb --quiet --eval <script>` (it connects in the
//!   script, to the URL in its env), the script calling none of MongoDB's
//!   writing methods (`deleteMany(`, `insertOne(`, `killOp(`,
//!   `runCommand(` …) nor naming the `$out` and `$merge` stages. The
//!   catalog is trusted: this catches a writing call written by mistake,
//!   not one hidden on purpose.
//!
//! No `sudo`, no shell, no other program.

use crate::catalog::ProcessAction;

/// The programs a process preview may run.
pub const READ_ONLY_PROGRAMS: &[&str] = &["find", "ls", "stat", "du", "mongosh"];

/// `find` actions that delete, run a program or write a file.
const FIND_WRITES: &[&str] = &[
    "-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fprint0", "-fprintf", "-fls",
];

/// MongoDB shell methods that write, kill or run arbitrary commands.
const MONGO_WRITES: &[&str] = &[
    "insert",
    "insertOne",
    "insertMany",
    "update",
    "updateOne",
    "updateMany",
    "replaceOne",
    "remove",
    "deleteOne",
    "deleteMany",
    "bulkWrite",
    "findOneAndUpdate",
    "findOneAndReplace",
    "findOneAndDelete",
    "findAndModify",
    "drop",
    "dropDatabase",
    "dropIndex",
    "dropIndexes",
    "createCollection",
    "createIndex",
    "createIndexes",
    "renameCollection",
    "reIndex",
    "compact",
    "killOp",
    "setProfilingLevel",
    "shutdownServer",
    "fsyncLock",
    "runCommand",
    "adminCommand",
    "eval",
    "load",
];

/// Why `p` is not a read-only process, if it is not.
pub fn problems(p: &ProcessAction) -> Vec<String> {
    let Some(program) = p.argv.first() else {
        return vec!["a process preview needs an argv".into()];
    };
    let rest = &p.argv[1..];
    match program.as_str() {
        "find" => rest
            .iter()
            .filter(|a| FIND_WRITES.contains(&a.as_str()))
            .map(|a| {
                format!("must be read-only: find {a} changes or runs something (leave it to the action)")
            })
            .collect(),
        "ls" | "stat" | "du" => vec![],
        "mongosh" => mongosh_problems(rest),
        other => vec![format!(
            "must be read-only: `{other}` is not one of the programs a preview may run ({})",
            READ_ONLY_PROGRAMS.join(", ")
        )],
    }
}

fn mongosh_problems(rest: &[String]) -> Vec<String> {
    let [nodb, quiet, eval, script] = rest else {
        return vec![
            "must be read-only: a mongosh preview is `mongosh --nodb --quiet --eval <script>` (the script connects)"
                .into(),
        ];
    };
    if (nodb.as_str(), quiet.as_str(), eval.as_str()) != ("--nodb", "--quiet", "--eval") {
        return vec![
            "must be read-only: a mongosh preview is `mongosh --nodb --quiet --eval <script>` (the script connects)"
                .into(),
        ];
    }
    let mut out: Vec<String> = MONGO_WRITES
        .iter()
        .filter(|m| calls(script, m))
        .map(|m| format!("must be read-only: the mongosh script calls {m}(), which writes"))
        .collect();
    for stage in ["$out", "$merge"] {
        if script.contains(stage) {
            out.push(format!(
                "must be read-only: the mongosh script names the {stage} stage, which writes"
            ));
        }
    }
    out
}

/// Whether `script` calls `method`: the name, not part of a longer one,
/// followed by `(` (spaces allowed).
fn calls(script: &str, method: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    script.match_indices(method).any(|(at, _)| {
        let before = script[..at].chars().next_back();
        let after = script[at + method.len()..].trim_start();
        !before.is_some_and(ident) && after.starts_with('(')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(argv: &[&str]) -> ProcessAction {
        ProcessAction {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: Default::default(),
            cwd: None,
            timeout: None,
            place: Default::default(),
        }
    }

    #[test]
    fn find_may_print_but_not_delete_run_or_write() {
        assert!(problems(&process(&[
            "find", "/d", "-name", "*.log", "-mtime", "+30", "-print"
        ]))
        .is_empty());
        for action in ["-delete", "-exec", "-execdir", "-ok", "-fprint", "-fls"] {
            let found = problems(&process(&["find", "/d", action, "x"]));
            assert_eq!(found.len(), 1, "{action}");
            assert!(found[0].contains(action), "{}", found[0]);
        }
    }

    #[test]
    fn only_listed_programs_run() {
        assert!(problems(&process(&["ls", "-la", "/d"])).is_empty());
        for p in ["rm", "sudo", "sh", "npm", "psql"] {
            let found = problems(&process(&[p, "x"]));
            assert!(found[0].contains("is not one of the programs"), "{p}: {found:?}");
        }
    }

    #[test]
    fn a_mongosh_script_may_read_but_not_write() {
        let read =
            "const d = connect(process.env.U); print(d.getCollection('c').countDocuments({ created_at: 1 }))";
        assert!(problems(&process(&["mongosh", "--nodb", "--quiet", "--eval", read])).is_empty());
        let reads_ops = "d.currentOp({ active: true }).inprog.forEach(o => print(o.opid))";
        assert!(problems(&process(&["mongosh", "--nodb", "--quiet", "--eval", reads_ops])).is_empty());
        for (script, word) in [
            ("d.c.deleteMany({})", "deleteMany"),
            ("d.killOp (12)", "killOp"),
            ("d.runCommand({ dropDatabase: 1 })", "runCommand"),
            ("d.c.aggregate([{ $out: 'x' }])", "$out"),
        ] {
            let found = problems(&process(&["mongosh", "--nodb", "--quiet", "--eval", script]));
            assert!(found.iter().any(|f| f.contains(word)), "{script}: {found:?}");
        }
        let file = problems(&process(&["mongosh", "--nodb", "script.js"]));
        assert!(file[0].contains("--eval <script>"), "{file:?}");
    }
}
