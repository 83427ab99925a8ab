//! arbosync: the terminal dashboard and scripting CLI, both talking to the agent over its
//! control socket with one protocol client.

pub mod cli;
pub mod client;
pub mod dashboard;
