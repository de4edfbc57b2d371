//! `roomkit-graph-conformance CASES_DIR OUT_DIR`: runs every case and writes its records.

use std::path::PathBuf;

use anyhow::bail;

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [cases, out] = args.as_slice() else {
        bail!("usage: roomkit-graph-conformance CASES_DIR OUT_DIR");
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let names = runtime.block_on(roomkit_graph_conformance::run_dir(cases, out))?;
    eprintln!("wrote {} records to {}", names.len(), out.display());
    Ok(())
}
