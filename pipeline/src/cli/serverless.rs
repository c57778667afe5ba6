//! The serverless commands: stage processes, `deploy sam`, `package`, `invoke`.

use std::path::Path;

use super::{Cli, load, stop_on_ctrl_c};
use crate::error::{Error, Result};
use crate::lake::Lake;
use crate::lambda::HandlerKind;
use crate::runtime::staged::{self, StageKind};

/// `run NAME --stage ...`: one stage of one pipeline as this process.
pub(super) async fn run_stage(
    cli: &Cli,
    pipelines: &[String],
    idle_exit: Option<f64>,
    stage: StageKind,
    min_workers: Option<usize>,
    max_workers: Option<usize>,
) -> Result<i32> {
    let config = load(cli).await?;
    let [name] = pipelines else {
        return Err(Error::Usage(
            "--stage runs one stage of one pipeline: name exactly one".into(),
        ));
    };
    let p = config.pipeline(name).map_err(Error::Usage)?;
    let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
    let idle = idle_exit.map(|s| std::time::Duration::from_secs_f64(s.max(0.0)));
    let stop = stop_on_ctrl_c();
    let summary = match stage {
        StageKind::Ingest => staged::ingest(p, &lake, stop, None).await?,
        StageKind::Transform => {
            let min = min_workers.unwrap_or(p.transform_workers.0);
            let opts = staged::TransformOptions {
                min_workers: min,
                max_workers: max_workers.unwrap_or(p.transform_workers.1).max(min),
                stop,
                idle_exit: idle,
            };
            staged::transform(p, &lake, &opts).await?
        }
        StageKind::Sink => staged::sink(p, &lake, stop, idle).await?,
    };
    println!("{}: {summary}", p.name);
    Ok(0)
}

pub(super) async fn deploy_sam(
    cli: &Cli,
    output: &Path,
    code_uri: &str,
    query_function: bool,
) -> Result<i32> {
    let config = load(cli).await?;
    let t = crate::deploy::sam_template(
        &config,
        &crate::deploy::SamOptions {
            code_uri: code_uri.to_string(),
            query_function,
        },
    )?;
    let text =
        serde_json::to_string_pretty(&t).map_err(|e| Error::Internal(format!("template: {e}")))?;
    std::fs::write(output, text + "\n")
        .map_err(|e| Error::io(format!("cannot write {}", output.display()), e))?;
    let functions = t["Resources"]
        .as_object()
        .map(|r| {
            r.values()
                .filter(|v| v["Type"] == "AWS::Serverless::Function")
                .count()
        })
        .unwrap_or(0);
    println!("wrote {} ({functions} functions)", output.display());
    Ok(0)
}

pub(super) async fn package(cli: &Cli, binary: Option<&Path>, output: &Path) -> Result<i32> {
    let config = load(cli).await?;
    let binary = match binary {
        Some(b) => b.to_path_buf(),
        None => std::env::current_exe()
            .map_err(|e| Error::io("cannot find this executable".to_string(), e))?,
    };
    let p = crate::package::package(
        &config,
        &crate::package::PackageOptions {
            binary,
            output: output.to_path_buf(),
        },
    )?;
    let glibc = p
        .glibc
        .map(|(a, b)| format!("glibc {a}.{b}"))
        .unwrap_or_else(|| "static".into());
    println!(
        "wrote {} ({} files, {:.1} MiB; bootstrap: {}, {glibc})",
        output.display(),
        p.files.len(),
        p.bytes as f64 / 1048576.0,
        config.lambda.architecture
    );
    Ok(0)
}

pub(super) async fn invoke(cli: &Cli, event: &Path, handler: Option<HandlerKind>) -> Result<i32> {
    let config = load(cli).await?;
    let lake = Lake::open(&config.project.lake, &config.storage.s3).await?;
    let text = std::fs::read_to_string(event)
        .map_err(|e| Error::io(format!("cannot read {}", event.display()), e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Usage(format!("{} is not JSON: {e}", event.display())))?;
    let answer = crate::lambda::handle(&config, &lake, &value, handler).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&answer)
            .map_err(|e| Error::Internal(format!("answer: {e}")))?
    );
    Ok(0)
}
