//! `arbosync`: the operator's dashboard and scripting CLI (talks to the agent's control socket).

fn main() -> anyhow::Result<()> {
    anyhow::bail!(
        "the arbosync dashboard is not built yet (control protocol v{}); use `arbosync-agent` directly",
        arbosync_shared::PROTOCOL_VERSION
    )
}
