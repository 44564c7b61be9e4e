//! The runbook catalog: `commands/*.toml` loaded, validated and indexed.
//! Loading reports every problem as `file:line: what is wrong`.

mod definition;
mod load;
mod model;
mod read_only;
mod schema;

pub use load::{
    by_profile, holds_secret, host_env_var, line_of, load_dir, load_sources, load_str, process_ref,
    shell_name, target_env_var, unused_targets, value_env_var, CheckError, Context, Problem, ProcessRef,
    RUN_VALUES, TARGET_PARTS,
};
pub use model::*;
pub use read_only::READ_ONLY_PROGRAMS;
pub use schema::{schema_json, SCHEMA_FILE};

#[cfg(test)]
mod tests;
