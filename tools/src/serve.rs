//! `strata serve`: listen at once (liveness true, readiness false), recover
//! the store, then serve S3; checkpoint and compact in the background
//! (SIGUSR1 pauses and resumes compaction); on SIGTERM or Ctrl-C stop
//! accepting, finish in-flight requests, checkpoint, exit 0.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ServeArgs, ServeConfig};

/// Connections past the cap that may still serve health and metrics, so
/// that probes see a saturated server as up.
const PROBE_RESERVE: usize = 16;

pub fn run(args: ServeArgs) -> Result<(), String> {
    let config = args.resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(config))
}

fn open_store(config: &ServeConfig) -> Result<(lsm::Store, recovery::RecoveryReport), String> {
    let fresh = !config.data.exists();
    let options = blockdev::OpenOptions {
        create_size_bytes: Some(config.size_bytes),
        engine: None,
    };
    let device = blockdev::open_device(&config.data, &options).map_err(|e| e.to_string())?;
    if fresh {
        tracing::info!(path = %config.data.display(), size_bytes = config.size_bytes, "creating and formatting the data file");
        lsm::format_device(device.as_ref(), config.segment_size_bytes)
            .map_err(|e| e.to_string())?;
    }
    let (store, report) = recovery::open(
        device,
        recovery::OpenOptions {
            store: lsm::StoreConfig {
                cache_bytes: config.cache_bytes,
                compression: lsm::Compression {
                    zstd_level: (config.zstd_level != 0).then_some(config.zstd_level),
                    ..Default::default()
                },
                dedup: config.dedup,
                ..Default::default()
            },
            ignore_checkpoint: false,
        },
    )
    .map_err(|e| format!("cannot open {}: {e}", config.data.display()))?;
    Ok((store, report))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Wraps again every version's data key that an older generation of its
/// master key wrapped (one record each). Keys not configured are left as
/// they are: their objects stay readable once the key is given back.
async fn rewrap_data_keys(store: &lsm::Store, keyring: &kms::Keyring) -> Result<usize, String> {
    if keyring.is_empty() {
        return Ok(0);
    }
    let mut done = 0;
    for (bucket, key, lsn, wrapped) in store.encrypted_versions() {
        if !keyring.contains(&wrapped.key_name) {
            continue;
        }
        let Some(again) = keyring
            .rewrap(&wrapped)
            .map_err(|e| format!("{bucket}/{key}: {e}"))?
        else {
            continue;
        };
        store
            .update_version(
                &bucket,
                &key,
                lsm::VersionRef::Lsn(lsn),
                lsm::format::VersionChange::DataKey(again),
            )
            .await
            .map_err(|e| format!("{bucket}/{key}: {e}"))?;
        done += 1;
    }
    Ok(done)
}

async fn checkpoint_loop(store: lsm::Store, interval: Duration) {
    let mut last = store.applied_lsn();
    loop {
        tokio::time::sleep(interval).await;
        let now = store.applied_lsn();
        if now != last {
            match store.checkpoint().await {
                Ok(report) => last = report.applied_lsn,
                Err(e) => tracing::warn!(error = %e, "background checkpoint failed"),
            }
        }
    }
}

/// SIGUSR1 pauses background compaction, and resumes it.
async fn compaction_toggle(store: lsm::Store) {
    let Ok(mut signals) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
    else {
        return;
    };
    while signals.recv().await.is_some() {
        let paused = !store.compaction_paused();
        store.pause_compaction(paused);
        tracing::info!(paused, "background compaction toggled");
    }
}

/// Lifts the soft limit on open files to the hard one, so the connection
/// cap, not the process's file limit, decides who is refused.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "open files limit raised"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open files limit"),
    }
}

/// The web console on its own address, with the S3 port's deadlines and
/// TLS. A default address that is taken only costs the console (several
/// servers on one host); an address the operator gave must work.
async fn start_console(
    console: &crate::config::ConsoleConfig,
    config: &ServeConfig,
    state: &s3api::AppState,
    keyring: &Arc<s3api::Keyring>,
    s3: &axum::Router,
    tls: &Option<tokio_rustls::TlsAcceptor>,
    limits: &crate::connections::ConnectionLimits,
) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    let listener = match tokio::net::TcpListener::bind(console.address).await {
        Ok(listener) => listener,
        Err(e) if !console.explicit => {
            tracing::warn!(address = %console.address, error = %e, "the console is not served: its default address is taken");
            return Ok(None);
        }
        Err(e) => {
            return Err(format!(
                "cannot listen on {} for the console: {e}",
                console.address
            ))
        }
    };
    let history = console::History::new(Duration::from_millis(console.sample_interval_ms));
    tokio::spawn(history.clone().sample(state.metrics.clone()));
    let app = console::router(console::Console::new(
        s3.clone(),
        keyring.clone(),
        state.clone(),
        history,
        console::ConsoleSettings {
            session_ttl: Duration::from_secs(console.session_s),
            s3_endpoint: console.s3_endpoint.clone(),
            s3_port: config.address.port(),
            tls: tls.is_some(),
            region: config.region.clone(),
        },
    ));
    tracing::info!(address = %console.address, "console listening");
    Ok(Some(tokio::spawn(crate::connections::serve(
        listener,
        tls.clone(),
        app,
        limits.clone(),
        state.metrics.clone(),
        shutdown_signal(),
    ))))
}

async fn serve(config: ServeConfig) -> Result<(), String> {
    raise_open_files_limit();
    let mut state = s3api::AppState::new(&config.region);
    state.aws_bucket_defaults = config.aws_bucket_defaults;
    state.encryption = Arc::new(s3api::SseSettings {
        keyring: config.keyring.clone(),
        encrypt_new_objects: config.encrypt_new_objects,
        sse_c_over_http: config.sse_c_over_http,
    });
    if !config.keyring.is_empty() {
        tracing::info!(
            keys = config.keyring.names().count(),
            default = config.keyring.default_name(),
            encrypt_new_objects = config.encrypt_new_objects,
            "encryption master keys loaded"
        );
    }
    let keyring = Arc::new(s3api::Keyring::new(
        state.store.clone(),
        config.access_key.clone(),
        config.secret_key.clone(),
        config.previous_secret_key.as_deref(),
    ));
    let app = s3api::router(
        state.clone(),
        keyring.clone(),
        &s3api::HttpLimits {
            max_concurrent_requests: config.max_requests,
            max_in_flight_bytes: config.max_in_flight_bytes,
            max_queued_tasks: config.max_queued_tasks,
            body_timeout: Duration::from_millis(config.body_timeout_ms.max(1)),
            ..Default::default()
        },
    );
    let listener = tokio::net::TcpListener::bind(config.address)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.address))?;
    tracing::info!(address = %config.address, data = %config.data.display(), region = %config.region, "listening");
    let tls = match &config.tls {
        Some((cert, key)) => {
            tracing::info!("serving HTTPS");
            Some(crate::tls::acceptor(cert, key)?)
        }
        None => None,
    };
    let ms = |v: u64| Duration::from_millis(v.max(1));
    let limits = crate::connections::ConnectionLimits {
        max_connections: config.max_connections,
        max_connections_per_address: config.max_connections_per_address,
        probe_reserve: PROBE_RESERVE,
        header_timeout: ms(config.header_timeout_ms),
        idle_timeout: ms(config.idle_timeout_ms),
        send_timeout: ms(config.send_timeout_ms),
        tls_handshake_timeout: ms(config.tls_handshake_timeout_ms),
    };
    let console = match &config.console {
        Some(console) => {
            start_console(console, &config, &state, &keyring, &app, &tls, &limits).await?
        }
        None => None,
    };
    let metrics = state.metrics.clone();
    let server = tokio::spawn(crate::connections::serve(
        listener,
        tls,
        app,
        limits,
        metrics,
        shutdown_signal(),
    ));

    let opening = config.clone();
    let (store, report) = tokio::task::spawn_blocking(move || open_store(&opening))
        .await
        .map_err(|e| format!("recovery task failed: {e}"))??;
    state
        .metrics
        .recovery_ms
        .store((report.seconds * 1000.0) as u64, Ordering::Relaxed);
    // A device of the previous release moves to this format before it is
    // served (its data stays readable either way).
    store
        .upgrade_format()
        .await
        .map_err(|e| format!("cannot upgrade the device's format: {e}"))?;
    // Secrets sealed under a rotated root secret are sealed again before
    // anything is served, so none is stranded once the old one is gone.
    match keyring.reseal_stale(&store).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            keys = n,
            "stored secrets sealed again under the new root secret"
        ),
        Err(e) => return Err(format!("cannot re-seal stored secrets: {e}")),
    }
    // Data keys wrapped under a rotated master key are wrapped again under
    // its new generation; no data is rewritten.
    match rewrap_data_keys(&store, &config.keyring).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            versions = n,
            "data keys wrapped again under rotated master keys"
        ),
        Err(e) => return Err(format!("cannot re-wrap data keys: {e}")),
    }
    let _ = state.store.set(store.clone());
    tracing::info!(objects = report.objects, seconds = report.seconds, "ready");
    let checkpoints = tokio::spawn(checkpoint_loop(
        store.clone(),
        Duration::from_secs(config.checkpoint_interval_s.max(1)),
    ));
    store.pause_compaction(config.compaction_paused);
    let policy = lsm::CompactionPolicy {
        rate_bytes_per_s: (config.compaction_rate_bytes_per_s > 0)
            .then_some(config.compaction_rate_bytes_per_s),
        ..Default::default()
    };
    let compactor = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .compact_in_background(
                    policy,
                    lsm::CompactionTriggers {
                        check_every: Duration::from_millis(config.compaction_interval_ms.max(10)),
                        ..Default::default()
                    },
                )
                .await
        })
    };
    let toggle = tokio::spawn(compaction_toggle(store.clone()));
    let lifecycle = {
        let store = store.clone();
        let expirer = lsm::ExpirerConfig {
            day_ms: config.lifecycle_day_s * 1000,
            interval: Duration::from_millis(config.lifecycle_interval_ms.max(100)),
            ..Default::default()
        };
        tokio::spawn(async move { store.expire_in_background(expirer).await })
    };

    server
        .await
        .map_err(|e| format!("server task failed: {e}"))?;
    if let Some(console) = console {
        console.abort();
    }
    checkpoints.abort();
    compactor.abort();
    toggle.abort();
    lifecycle.abort();
    match store.checkpoint().await {
        Ok(r) => tracing::info!(objects = r.objects, "final checkpoint written"),
        Err(e) => tracing::warn!(error = %e, "final checkpoint failed"),
    }
    store.shutdown();
    tracing::info!("stopped");
    Ok(())
}
