//! The `posbridge-central` binary.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("posbridge-central: not built yet")
}
