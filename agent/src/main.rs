//! `arbosync-agent`: the service binary.
fn main() {}
