//! One module per subcommand.

pub mod decode;
pub mod gen;
pub mod realign;
pub mod simulate;
pub mod validate;
