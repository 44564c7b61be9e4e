//! The shipped severity policies (runbooks.md §3): every seed scale loads,
//! checked against the shipped people and roles, and their math holds.

use opsbot::auth::Roles;
use opsbot::config::Config;
use opsbot::escalation::{Stop, Target};
use std::collections::HashMap;
use std::path::Path;

/// The shipped config's policies, checked against its people and roles.
pub fn shipped() -> opsbot::policy::Policies {
    let config = Config::load(Path::new("config/opsbot.toml"), &HashMap::new()).expect("config");
    let roles = Roles::new(&config.roles).names();
    let (policies, problems) = opsbot::app::policies(&config, &roles);
    assert!(problems.is_empty(), "{problems:#?}");
    policies
}

#[test]
fn every_seed_scale_is_shipped() {
    let p = shipped();
    let scales: Vec<(&str, Vec<&str>)> = p
        .profiles
        .iter()
        .map(|(name, pp)| (name.as_str(), pp.scale.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        scales,
        vec![
            ("cap", vec!["P0", "P1", "P2", "P3"]),
            ("chat", vec!["P1", "P2", "P3", "P4"]),
            ("pdf", vec!["SEV1", "SEV2", "SEV3", "SEV4"]),
            ("queue", vec!["P0", "P1", "P2"]),
            ("scrape", vec!["P1", "P2", "P3", "P4"]),
        ]
    );
    for (name, pp) in &p.profiles {
        assert_eq!(pp.levels.len(), pp.scale.len(), "{name}: a policy per level");
        assert!(!pp.destinations.is_empty(), "{name}: a destination");
    }
    // `P1` is rank 1 in chat and rank 2 in queue (runbooks.md §3).
    assert_eq!(p.profiles["chat"].rank("P1"), Some(1));
    assert_eq!(p.profiles["queue"].rank("P1"), Some(2));
}

#[test]
fn cap_p0_pages_the_chain_of_seed_000() {
    let p = shipped();
    let p0 = &p.profiles["cap"].levels["P0"];
    let m = 60_000;
    assert_eq!(p0.schedule(0, None), vec![0, 5 * m, 15 * m, 30 * m]);
    assert_eq!(p0.steps[0].to, vec![Target::Rotation("primary".into())]);
    assert_eq!(p0.steps[2].stop, Stop::Resolve);
    // After an ack only the management notices remain.
    assert_eq!(p0.next(0, None, 1, true, false), Some((2, 15 * m)));
}
