//! One module per subcommand.

pub mod admin;
pub mod check_owners;
pub mod config_check;
pub mod decode;
pub mod demo;
pub mod emulator;
pub mod gen;
pub mod loadgen;
pub mod loadgen_e2e;
pub mod realign;
pub mod reconcile;
pub mod remote;
pub mod replay;
pub mod run;
pub mod run_writer;
pub mod serve;
pub mod simulate;
pub mod state;
pub mod sync;
pub mod validate;
pub mod writes;
