//! The runbook catalog: `commands/*.toml` loaded, validated and indexed.
//! Loading reports every problem as `file:line: what is wrong`.

mod definition;
mod load;
mod model;

pub use load::{
    by_profile, line_of, load_dir, load_sources, load_str, target_env_var, unused_targets, CheckError,
    Context, Problem,
};
pub use model::*;

#[cfg(test)]
mod tests;
