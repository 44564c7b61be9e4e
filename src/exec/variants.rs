//! `variants` actions: one action per value of an enum argument (`/security
//! scan deps` runs `npm audit`, `/security scan outdated` runs `npm outdated`).
//! The catalog checks at load that every value of the enum has its action,
//! so a missing or unknown value here means the arguments were not parsed.

use super::ExecError;
use crate::catalog::{Action, Variants};
use std::collections::BTreeMap;

/// The action of the value `args` give the argument `v.by` (a switch left
/// off is `false`).
pub(super) fn choose<'a>(v: &'a Variants, args: &BTreeMap<String, String>) -> Result<&'a Action, ExecError> {
    if let Some(action) = v.choose(args) {
        return Ok(action);
    }
    let Some(value) = args.get(&v.by) else {
        return Err(ExecError::MissingArg { name: v.by.clone() });
    };
    Err(ExecError::Invalid {
        target: None,
        message: format!(
            "`{}` is not one of {} for `{}`",
            value.escape_debug(),
            v.values().join(", "),
            v.by
        ),
    })
}
