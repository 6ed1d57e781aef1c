//! Starts the real `strata` binary on a loopback port with its own data
//! file, and stops or kills it.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "AKIDSTRATATEST";
pub const SECRET_KEY: &str = "strata-test-secret-key-0123456789abcdefgh";

pub struct Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(Vec::new(), |_| Vec::new())
    }

    /// Starts with extra `serve` arguments, computed from the data dir.
    pub fn start_with(
        extra: Vec<String>,
        more: impl FnOnce(&std::path::Path) -> Vec<String>,
    ) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut extra_args = extra;
        extra_args.extend(more(dir.path()));
        let mut server = Server {
            dir,
            port: free_port(),
            extra_args,
            child: None,
        };
        server.spawn();
        server
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data.img")
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["serve", "--address"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(if self.extra_args.iter().any(|a| a == "--size-bytes") {
                Vec::new()
            } else {
                vec![
                    "--size-bytes",
                    "2147483648",
                    "--segment-size-bytes",
                    "33554432",
                ]
            })
            .args(&self.extra_args)
            .args(if self.extra_args.iter().any(|a| a == "--data") {
                Vec::new()
            } else {
                vec!["--data".to_string(), self.data().display().to_string()]
            })
            .env("STRATA_ACCESS_KEY", ACCESS_KEY)
            .env("STRATA_SECRET_KEY", SECRET_KEY)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start strata");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let tls = self.extra_args.iter().any(|a| a == "--tls-cert");
        while Instant::now() < deadline {
            if tls {
                let status = Command::new("curl")
                    .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"])
                    .arg(format!(
                        "https://127.0.0.1:{}/minio/health/ready",
                        self.port
                    ))
                    .output();
                if status.is_ok_and(|o| o.stdout == b"200") {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = s.write_all(
                    b"GET /minio/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                );
                let mut reply = String::new();
                let _ = s.read_to_string(&mut reply);
                if reply.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server not ready; log:\n{}", self.log());
    }

    /// Peak resident memory of the server process (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let pid = self.child.as_ref().map(|c| c.id()).unwrap_or(0);
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<u64>().ok())
                })
            })
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL, then start again on the same data file.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGKILL and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data file after `terminate` or
    /// `kill`.
    pub fn start_again(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An AWS SDK client for the server, path-style, with the test credentials.
pub fn sdk_client(server: &Server) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{Credentials, Region};
    let config = aws_sdk_s3::Config::builder()
        .endpoint_url(server.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Incompressible bytes (xorshift), reproducible from the seed.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
