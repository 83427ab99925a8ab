//! Helpers shared by the end-to-end and contract tests.

pub mod openapi;
