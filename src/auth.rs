//! Who may do what. Pure: people, their chat identities and roles, and the
//! rules for requesting and approving commands. The two-person rule compares
//! people, never accounts.

use crate::catalog::{Command, Risk};
use crate::config::PersonConfig;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Built-in roles and what each implies (runbooks.md §0). `exec` approves only.
pub const BUILTIN_ROLES: &[(&str, &[&str])] = &[
    ("anyone", &[]),
    ("support", &["anyone"]),
    ("oncall", &["support"]),
    ("sre", &["oncall"]),
    ("dba", &["oncall"]),
    ("security", &["oncall"]),
    ("tech-lead", &["oncall"]),
    ("eng-manager", &["oncall"]),
    ("exec", &[]),
];

/// The role graph: each role with the roles it directly implies.
#[derive(Debug, Clone)]
pub struct Roles {
    implies: BTreeMap<String, Vec<String>>,
}

impl Roles {
    /// Built-in roles plus configured extras (`[roles.NAME] implies = [...]`).
    pub fn new(extra: &BTreeMap<String, Vec<String>>) -> Self {
        let mut implies: BTreeMap<String, Vec<String>> = BUILTIN_ROLES
            .iter()
            .map(|(r, i)| (r.to_string(), i.iter().map(|s| s.to_string()).collect()))
            .collect();
        for (r, i) in extra {
            implies.entry(r.clone()).or_default().extend(i.iter().cloned());
        }
        Roles { implies }
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.implies.keys().cloned().collect()
    }

    /// `held` plus everything it implies, transitively.
    pub fn closure(&self, held: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<&str> = held.iter().map(String::as_str).collect();
        while let Some(r) = todo.pop() {
            if out.insert(r.to_string()) {
                if let Some(next) = self.implies.get(r) {
                    todo.extend(next.iter().map(String::as_str));
                }
            }
        }
        out
    }
}

/// A person: one human, any number of chat accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    /// Held roles with everything they imply.
    pub roles: BTreeSet<String>,
    /// Every wire identity (`slack:U0ALICE`, …), for mentions.
    pub identities: Vec<String>,
}

/// Everyone the bot knows, indexed by wire identity (`slack:U0ALICE`).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    people: BTreeMap<String, Arc<Person>>,
    by_identity: HashMap<String, String>,
}

/// Who is acting: a known person (through one of their identities) or a stranger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// Shared with the directory: resolving an identity copies nothing.
    Person {
        person: Arc<Person>,
        identity: String,
    },
    Unknown {
        identity: String,
    },
}

impl Actor {
    pub fn identity(&self) -> &str {
        match self {
            Actor::Person { identity, .. } | Actor::Unknown { identity } => identity,
        }
    }

    /// The person's name, or the raw identity for strangers.
    pub fn who(&self) -> &str {
        match self {
            Actor::Person { person, .. } => &person.name,
            Actor::Unknown { identity } => identity,
        }
    }

    /// Does the actor hold `role` (directly or by implication)?
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().is_some_and(|r| r.contains(role))
    }

    fn roles(&self) -> Option<&BTreeSet<String>> {
        match self {
            Actor::Person { person, .. } => Some(&person.roles),
            Actor::Unknown { .. } => None,
        }
    }
}

/// The identity `opsbot run` acts as: `requested` (`--as`) when given, else
/// `console:<os_user>`. Only `console:` identities are accepted: the console
/// must not act as a chat account (that would approve "from Slack" as
/// someone else). The error is the message to print.
pub fn console_identity(requested: Option<&str>, os_user: Option<&str>) -> Result<String, String> {
    let identity = match (requested, os_user.filter(|u| !u.is_empty())) {
        (Some(r), _) => r.to_string(),
        (None, Some(user)) => format!("console:{user}"),
        (None, None) => {
            return Err(
                "cannot tell who you are: $USER and $LOGNAME are unset; pass --as console:<name>".into(),
            )
        }
    };
    let name = identity.strip_prefix("console:").unwrap_or_default();
    let plain = !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c.is_control() || c == ':');
    if plain {
        Ok(identity)
    } else {
        Err(format!(
            "refused: `{identity}` is not a console identity; `opsbot run` acts only as console:<name> (chat identities act from their chat)"
        ))
    }
}

/// Why something is not allowed; the text is what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("refused: unknown identities may run public read commands only. Ask an admin to add `{identity}` to a [people.<name>] entry in the opsbot config")]
    UnknownIdentity { identity: String },
    #[error("refused: `/{command}` needs one of these roles: {}", .need.join(", "))]
    MissingRole { command: String, need: Vec<String> },
    #[error("refused: approving {id} needs one of these roles: {}", .need.join(", "))]
    CannotApprove { id: String, need: Vec<String> },
    #[error("refused: you requested {id}; another person must approve it")]
    SelfApproval { id: String },
}

impl Directory {
    /// Builds the directory; identities claimed by two people are reported
    /// as `(person, problem)`.
    pub fn new(
        people: &BTreeMap<String, PersonConfig>,
        roles: &Roles,
    ) -> Result<Self, Vec<(String, String)>> {
        let mut dir = Directory::default();
        let mut problems = Vec::new();
        for (name, p) in people {
            for id in p.identities() {
                if let Some(other) = dir.by_identity.insert(id.clone(), name.clone()) {
                    problems.push((
                        name.clone(),
                        format!("identity `{id}` belongs to both `{other}` and `{name}`"),
                    ));
                }
            }
            let person = Person {
                name: name.clone(),
                roles: roles.closure(&p.roles),
                identities: p.identities(),
            };
            dir.people.insert(name.clone(), Arc::new(person));
        }
        if problems.is_empty() {
            Ok(dir)
        } else {
            Err(problems)
        }
    }

    /// Resolves a wire identity to the actor behind it.
    pub fn resolve(&self, identity: &str) -> Actor {
        match self.by_identity.get(identity).and_then(|n| self.people.get(n)) {
            Some(p) => Actor::Person {
                person: Arc::clone(p),
                identity: identity.to_string(),
            },
            None => Actor::Unknown {
                identity: identity.to_string(),
            },
        }
    }

    pub fn person(&self, name: &str) -> Option<&Person> {
        self.people.get(name).map(|p| &**p)
    }

    /// Everyone holding `role` (directly or by implication), by name.
    pub fn with_role(&self, role: &str) -> Vec<&Person> {
        self.people
            .values()
            .filter(|p| p.roles.contains(role))
            .map(|p| &**p)
            .collect()
    }

    /// The person a chat argument names: a person's name (`bob`, `@bob`),
    /// a wire identity (`slack:U0BOB`) or a platform mention (`<@U0BOB>`,
    /// `<@U0BOB|bob>`) typed on `platform`.
    pub fn lookup(&self, platform: &str, typed: &str) -> Option<&Person> {
        let t = typed.trim();
        if let Some(inner) = t.strip_prefix("<@").and_then(|r| r.strip_suffix('>')) {
            let id = inner.split('|').next().unwrap_or(inner).trim_start_matches('!');
            return self.resolve_person(&format!("{platform}:{id}"));
        }
        let name = t.trim_start_matches('@');
        self.person(name).or_else(|| self.resolve_person(name))
    }

    fn resolve_person(&self, identity: &str) -> Option<&Person> {
        self.by_identity.get(identity).and_then(|n| self.person(n))
    }
}

fn holds_any(roles: &BTreeSet<String>, wanted: &[String]) -> bool {
    wanted.iter().any(|w| roles.contains(w))
}

/// May `actor` request `command`? Unknown identities: read + `anyone` only.
pub fn may_request(actor: &Actor, command: &Command) -> Result<(), Denied> {
    let public = command.roles.iter().any(|r| r == "anyone");
    match actor.roles() {
        None if public && command.risk == Risk::Read => Ok(()),
        None => Err(Denied::UnknownIdentity {
            identity: actor.identity().to_string(),
        }),
        Some(_) if public => Ok(()),
        Some(held) if holds_any(held, &command.roles) => Ok(()),
        Some(_) => Err(Denied::MissingRole {
            command: command.name.clone(),
            need: command.roles.clone(),
        }),
    }
}

/// May `actor` approve (or reject) approval `id`, requested by person `requester`
/// and needing one of `roles`? Self-approval is judged by person, not account.
pub fn may_approve(actor: &Actor, id: &str, requester: &str, roles: &[String]) -> Result<(), Denied> {
    match actor {
        Actor::Unknown { identity } => Err(Denied::UnknownIdentity {
            identity: identity.clone(),
        }),
        Actor::Person { person, .. } if person.name == requester => {
            Err(Denied::SelfApproval { id: id.to_string() })
        }
        Actor::Person { person, .. } if holds_any(&person.roles, roles) => Ok(()),
        Actor::Person { .. } => Err(Denied::CannotApprove {
            id: id.to_string(),
            need: roles.to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Action, HealthAction, Location};

    #[test]
    fn the_console_acts_only_as_console_identities() {
        assert_eq!(
            console_identity(Some("console:bob"), Some("alice")),
            Ok("console:bob".into())
        );
        assert_eq!(console_identity(None, Some("alice")), Ok("console:alice".into()));
        for bad in [
            "slack:U0BOB",
            "discord:111",
            "bob",
            "console:",
            "console:a b",
            "console:x:y",
            "system:recovery",
        ] {
            let e = console_identity(Some(bad), Some("alice")).unwrap_err();
            assert!(e.contains("not a console identity"), "{bad}: {e}");
        }
        assert!(console_identity(None, None)
            .unwrap_err()
            .contains("--as console:<name>"));
        assert!(console_identity(None, Some("")).is_err());
    }

    fn dir() -> Directory {
        let mut people = BTreeMap::new();
        let p = |slack: &str, discord: &str, roles: &[&str]| PersonConfig {
            slack: vec![slack.into()],
            discord: vec![discord.into()],
            console: vec![],
            roles: roles.iter().map(|r| r.to_string()).collect(),
        };
        people.insert("alice".into(), p("UA", "111", &["oncall"]));
        people.insert("bob".into(), p("UB", "222", &["sre"]));
        people.insert("erin".into(), p("UE", "555", &["exec"]));
        Directory::new(&people, &Roles::new(&BTreeMap::new())).unwrap()
    }

    fn cmd(risk: Risk, roles: &[&str]) -> Command {
        Command {
            profile: "queue".into(),
            name: "queue retry".into(),
            summary: String::new(),
            args: vec![],
            risk,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            approve: None,
            action: Action::Health(HealthAction { checks: vec![] }),
            preview: None,
            reply: None,
            schedule: None,
            location: Location {
                file: "x".into(),
                line: 1,
            },
        }
    }

    #[test]
    fn roles_imply_transitively() {
        let d = dir();
        let bob = d.person("bob").unwrap();
        assert!(
            bob.roles.contains("oncall") && bob.roles.contains("support") && bob.roles.contains("anyone")
        );
        assert!(
            !d.person("erin").unwrap().roles.contains("oncall"),
            "exec approves only"
        );
    }

    #[test]
    fn unknown_identities_read_public_only() {
        let d = dir();
        let stranger = d.resolve("slack:U0STRANGER");
        assert!(may_request(&stranger, &cmd(Risk::Read, &["anyone"])).is_ok());
        let err = may_request(&stranger, &cmd(Risk::Write, &["anyone"])).unwrap_err();
        assert!(err.to_string().contains("slack:U0STRANGER"), "{err}");
        assert!(may_request(&stranger, &cmd(Risk::Read, &["support"])).is_err());
    }

    #[test]
    fn request_needs_a_listed_role_or_an_implying_one() {
        let d = dir();
        assert!(may_request(&d.resolve("slack:UB"), &cmd(Risk::Write, &["oncall"])).is_ok());
        assert!(may_request(&d.resolve("slack:UA"), &cmd(Risk::Write, &["oncall"])).is_ok());
        let e = may_request(&d.resolve("slack:UA"), &cmd(Risk::Write, &["sre"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "refused: `/queue retry` needs one of these roles: sre"
        );
    }

    #[test]
    fn self_approval_is_by_person_not_account() {
        let d = dir();
        let roles = vec!["sre".to_string(), "oncall".to_string()];
        // alice requested from Slack, approves from Discord: still alice.
        let e = may_approve(&d.resolve("discord:111"), "a7", "alice", &roles).unwrap_err();
        assert_eq!(e, Denied::SelfApproval { id: "a7".into() });
        assert!(may_approve(&d.resolve("slack:UB"), "a7", "alice", &roles).is_ok());
        assert!(may_approve(&d.resolve("slack:UE"), "a7", "alice", &roles).is_err());
        assert!(may_approve(&d.resolve("slack:UX"), "a7", "alice", &roles).is_err());
    }

    #[test]
    fn identity_claimed_twice_is_reported() {
        let mut people = BTreeMap::new();
        let p = PersonConfig {
            slack: vec!["U1".into()],
            discord: vec![],
            console: vec![],
            roles: vec![],
        };
        people.insert("a".into(), p.clone());
        people.insert("b".into(), p);
        let errs = Directory::new(&people, &Roles::new(&BTreeMap::new())).unwrap_err();
        assert_eq!(errs[0].0, "b");
        assert!(errs[0].1.contains("slack:U1"));
    }
}
