//! # ruckus-chaos — not built yet
//!
//! This crate will hold the scenario model (TOML files in `scenarios/`), the
//! randomized nemesis, the history and its checkers (zero loss first), the
//! seed runner, the shrinker and the `ruckus` command-line tool.
//!
//! It is deliberately empty today: nothing here pretends to work.
