//! The `strata` binary as an operator meets it: TLS, refusal of the
//! well-known credentials off loopback, refusal of a foreign data file,
//! health and metrics endpoints.

mod common;

use std::process::Command;

use common::Server;

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (body.to_string(), code.to_string())
}

#[test]
fn serves_https_with_a_given_certificate() {
    let server = Server::start_with(Vec::new(), |dir| {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        vec![
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ]
    });
    let base = format!("https://127.0.0.1:{}", server.port);
    let (_, code) = curl(&["-k", &format!("{base}/minio/health/live")]);
    assert_eq!(code, "200");
    // S3 answers over TLS too, and still demands a signature.
    let (body, code) = curl(&["-k", &format!("{base}/")]);
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("AccessDenied"), "{body}");
    // Plain HTTP on the TLS port is not served.
    let (_, code) = curl(&[&format!(
        "http://127.0.0.1:{}/minio/health/live",
        server.port
    )]);
    assert_ne!(code, "200");
}

#[test]
fn health_and_metrics() {
    let server = Server::start();
    for path in ["/health", "/minio/health/live", "/minio/health/ready"] {
        let (_, code) = curl(&[&format!("{}{path}", server.endpoint())]);
        assert_eq!(code, "200", "{path}");
    }
    let (_, code) = curl(&[&format!("{}/", server.endpoint())]);
    assert_eq!(code, "403");
    let (metrics, code) = curl(&[&format!("{}/metrics", server.endpoint())]);
    assert_eq!(code, "200");
    assert!(
        metrics.contains("strata_requests_total{operation=\"ListBuckets\",status=\"403\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("strata_device_bytes_free"), "{metrics}");
    assert!(metrics.contains("strata_recovery_seconds"), "{metrics}");
}

fn run_strata(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(args)
        .env_remove("STRATA_ACCESS_KEY")
        .env_remove("STRATA_SECRET_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run strata");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn well_known_credentials_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d.img");
    let (code, stderr) = run_strata(
        &[
            "serve",
            "--address",
            "0.0.0.0:0",
            "--data",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("refusing to serve"), "{stderr}");
    assert!(!data.exists(), "nothing may be created before refusing");
}

#[test]
fn foreign_data_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("foreign.img");
    std::fs::write(&data, vec![0x5a; 8 << 20]).unwrap();
    let (code, stderr) = run_strata(
        &[
            "serve",
            "--address",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
        ],
        &[
            ("STRATA_ACCESS_KEY", "k"),
            ("STRATA_SECRET_KEY", "secret-secret"),
        ],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("not formatted for Strata"), "{stderr}");
    // Untouched.
    assert!(std::fs::read(&data).unwrap().iter().all(|&b| b == 0x5a));
}

#[test]
fn format_then_serve_a_preformatted_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pre.img");
    let (code, stderr) = run_strata(
        &[
            "format",
            data.to_str().unwrap(),
            "--size-bytes",
            "67108864",
            "--segment-size-bytes",
            "4194304",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let server = Server::start_with(vec!["--data".into(), data.display().to_string()], |_| {
        Vec::new()
    });
    let (_, code) = curl(&[&format!("{}/minio/health/ready", server.endpoint())]);
    assert_eq!(code, "200", "{}", server.log());
    assert!(
        server.log().contains("segments_scanned"),
        "{}",
        server.log()
    );
}

/// Past --max-connections, a new connection waits until one closes.
#[test]
fn connection_cap_holds_new_clients_back() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    let server = Server::start_with(vec!["--max-connections".into(), "2".into()], |_| Vec::new());
    // Let wait_ready's probe connection (Connection: close) give its place back.
    std::thread::sleep(Duration::from_millis(500));
    let ask = |s: &mut TcpStream| {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 64];
        s.read(&mut buf)
            .map(|n| String::from_utf8_lossy(&buf[..n]).to_string())
    };
    let mut first = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let mut second = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    for s in [&first, &second] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    assert!(ask(&mut first).unwrap().starts_with("HTTP/1.1 200"));
    assert!(ask(&mut second).unwrap().starts_with("HTTP/1.1 200"));
    let mut third = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    assert!(
        ask(&mut third).is_err(),
        "a third connection was served past the cap"
    );
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = third.read(&mut buf).expect("served once a place is free");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
