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

/// At --max-connections, a newcomer takes the place of the connection
/// that has waited longest without a request in service, which is closed:
/// idle connections cannot lock new clients out.
#[test]
fn at_the_connection_cap_a_newcomer_takes_the_idlest_place() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    let server = Server::start_with(
        vec![
            "--max-connections".into(),
            "2".into(),
            "--max-connections-per-address".into(),
            "2".into(),
        ],
        |_| Vec::new(),
    );
    // Let wait_ready's probe connection (Connection: close) give its place back.
    std::thread::sleep(Duration::from_millis(500));
    // One whole answer (health's has no body).
    let ask = |s: &mut TcpStream| {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte)? {
                0 => break,
                _ => answer.push(byte[0]),
            }
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).to_string())
    };
    let mut first = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let mut second = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    for s in [&first, &second] {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    assert!(ask(&mut first).unwrap().starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(50));
    assert!(ask(&mut second).unwrap().starts_with("HTTP/1.1 200"));
    // Only a connection idle past the eviction grace (a tenth of the 10 s
    // header timeout) gives way.
    std::thread::sleep(Duration::from_millis(1200));
    let mut third = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(ask(&mut third).unwrap().starts_with("HTTP/1.1 200"));
    // The first, idle longest, made room; the second is still served.
    let mut rest = Vec::new();
    assert_eq!(
        first.read_to_end(&mut rest).ok(),
        Some(0),
        "the idlest connection was closed"
    );
    assert!(ask(&mut second).unwrap().starts_with("HTTP/1.1 200"));
}
