//! A real Lambda Runtime API for tests: `cargo lambda watch --only-lambda-apis` (cargo-lambda
//! from PyPI, installed by scripts/test.sh) serves the runtime API that a function's
//! `bootstrap` polls, and Lambda's Invoke API that the tests call.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The name the emulator gives a function started outside it.
const FUNCTION: &str = "_";

pub struct RuntimeEmulator {
    child: Child,
    pub port: u16,
    /// Holds the throwaway Cargo manifest the emulator insists on.
    _dir: tempfile::TempDir,
}

impl Drop for RuntimeEmulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cargo_lambda() -> String {
    std::env::var("TRIBUTARY_TEST_CARGO_LAMBDA").unwrap_or_else(|_| {
        panic!("TRIBUTARY_TEST_CARGO_LAMBDA is not set: run the tests with `bash scripts/test.sh`, which installs cargo-lambda")
    })
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl RuntimeEmulator {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // `cargo lambda` reads a manifest even when it builds nothing.
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"emulator\"\nversion = \"0.0.0\"\nedition = \"2021\"\n[workspace]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("emulator.log")).unwrap();
        let child = Command::new(cargo_lambda())
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot start cargo-lambda");
        let mut emu = Self {
            child,
            port,
            _dir: dir,
        };
        let until = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = emu.child.try_wait() {
                panic!("cargo lambda watch exited ({status}): {}", emu.log());
            }
            assert!(
                Instant::now() < until,
                "the runtime emulator did not listen: {}",
                emu.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        emu
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("emulator.log")).unwrap_or_default()
    }

    /// What the function wrote to stderr (its logs and metric lines).
    pub fn function_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("function.log")).unwrap_or_default()
    }

    /// Starts `bootstrap` in `project` as Lambda would: no arguments, the runtime variables
    /// set, the project folder as working directory (LAMBDA_TASK_ROOT).
    pub fn start_function(&self, bootstrap: &Path, project: &Path, env: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(bootstrap);
        cmd.current_dir(project)
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{}/.rt", self.port),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("LAMBDA_TASK_ROOT", project)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self._dir.path().join("function.log")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("cannot start bootstrap")
    }

    /// Lambda's Invoke API: the function's answer (or its error document).
    pub fn invoke(&self, event: &serde_json::Value) -> crate::http::Response {
        crate::http::request(
            &format!("127.0.0.1:{}", self.port),
            "POST",
            &format!("/2015-03-31/functions/{FUNCTION}/invocations"),
            None,
            Some(event),
        )
    }
}

/// Records `(shard, sequence number, data)` as a Kinesis event-source mapping delivers them to
/// Lambda, built from the `aws_lambda_events` types (so the shape is AWS's, not ours).
pub fn kinesis_event(stream: &str, recs: &[(String, String, Vec<u8>)]) -> serde_json::Value {
    use aws_lambda_events::encodings::SecondTimestamp;
    use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
    let mut event = KinesisEvent::default();
    for (shard, seq, data) in recs {
        let mut r = KinesisEventRecord::default();
        r.aws_region = Some("us-east-1".into());
        r.event_id = Some(format!("{shard}:{seq}"));
        r.event_name = Some("aws:kinesis:record".into());
        r.event_source = Some("aws:kinesis".into());
        r.event_source_arn = Some(format!(
            "arn:aws:kinesis:us-east-1:123456789012:stream/{stream}"
        ));
        r.event_version = Some("1.0".into());
        r.invoke_identity_arn = Some("arn:aws:iam::123456789012:role/tributary".into());
        // A minute on the stream before the function sees it.
        r.kinesis.approximate_arrival_timestamp =
            SecondTimestamp(chrono::Utc::now() - chrono::Duration::seconds(60));
        r.kinesis.data.0.clone_from(data);
        r.kinesis.partition_key = "k".into();
        r.kinesis.sequence_number = seq.clone();
        r.kinesis.kinesis_schema_version = Some("1.0".into());
        event.records.push(r);
    }
    serde_json::to_value(&event).unwrap()
}

/// A handler's answer read as AWS's partial-batch response type: the item identifiers
/// Lambda would retry from.
pub fn batch_item_failures(answer: &serde_json::Value) -> Vec<String> {
    let r: aws_lambda_events::event::streams::KinesisEventResponse =
        serde_json::from_value(answer.clone())
            .unwrap_or_else(|e| panic!("not a KinesisEventResponse ({e}): {answer}"));
    r.batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.unwrap_or_default())
        .collect()
}
