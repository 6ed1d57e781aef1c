//! The real-file device on both engines: aligned I/O (a large write in
//! concurrent pieces too), durability calls, punch-hole discard, and
//! refusal of a second opener.

use blockdev::{open_device, AlignedBuf, BlockDevice, DeviceError, IoEngine, OpenOptions};

fn options(engine: IoEngine) -> OpenOptions {
    OpenOptions {
        create_size_bytes: Some(16 << 20),
        engine: Some(engine),
    }
}

/// `start_write`, waited for.
fn write_and_wait(
    dev: &dyn BlockDevice,
    buf: AlignedBuf,
    offset: u64,
) -> Result<AlignedBuf, DeviceError> {
    let (tx, rx) = std::sync::mpsc::channel();
    dev.start_write(
        buf,
        offset,
        Box::new(move |outcome| {
            let _ = tx.send(outcome);
        }),
    );
    rx.recv().expect("start_write reports")
}

fn exercise(engine: IoEngine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dev.img");
    let dev = open_device(&path, &options(engine)).unwrap();
    assert_eq!(dev.size_bytes(), 16 << 20);

    let mut buf = AlignedBuf::zeroed(1 << 20);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let expected = buf.to_vec();
    dev.write_at(buf, 4096).unwrap();
    dev.sync().unwrap();
    let back = dev.read_at(AlignedBuf::zeroed(1 << 20), 4096).unwrap();
    assert_eq!(&back[..], &expected[..]);

    // A write of several pieces, the last one short: on io_uring they are
    // in flight together, and the buffer comes back whole when all are done.
    let mut big = AlignedBuf::zeroed((3 << 20) + 8192);
    for (i, b) in big.iter_mut().enumerate() {
        *b = (i % 253) as u8;
    }
    let expected_big = big.to_vec();
    let returned = write_and_wait(dev.as_ref(), big, 2 << 20).unwrap();
    assert_eq!(&returned[..], &expected_big[..]);
    let back = dev
        .read_at(AlignedBuf::zeroed(expected_big.len()), 2 << 20)
        .unwrap();
    assert!(back[..] == expected_big[..], "deep write read back");
    // One piece or less is written whole, on the calling thread.
    let mut small = AlignedBuf::zeroed(8192);
    small.fill(0x5a);
    let returned = write_and_wait(dev.as_ref(), small, 6 << 20).unwrap();
    assert!(returned.iter().all(|&b| b == 0x5a));
    let back = dev.read_at(AlignedBuf::zeroed(8192), 6 << 20).unwrap();
    assert!(
        back.iter().all(|&b| b == 0x5a),
        "small deep write read back"
    );
    assert!(matches!(
        write_and_wait(dev.as_ref(), AlignedBuf::zeroed(2 << 20), 15 << 20),
        Err(DeviceError::OutOfRange { .. })
    ));

    let allocated = dev.allocated_bytes().unwrap();
    assert!(allocated >= 1 << 20, "allocated {allocated}");
    dev.discard(4096, 1 << 20).unwrap();
    assert!(dev.allocated_bytes().unwrap() < allocated);
    let zeros = dev.read_at(AlignedBuf::zeroed(4096), 4096).unwrap();
    assert!(zeros.iter().all(|&b| b == 0));

    assert!(matches!(
        dev.read_at(AlignedBuf::zeroed(4096), 100),
        Err(DeviceError::Unaligned { .. })
    ));
    assert!(matches!(
        dev.read_at(AlignedBuf::zeroed(4096), 16 << 20),
        Err(DeviceError::OutOfRange { .. })
    ));
    let second = open_device(&path, &options(engine));
    assert!(
        matches!(second, Err(DeviceError::Busy { .. })),
        "second open must be refused"
    );
    drop(dev);
    open_device(&path, &options(engine)).expect("reopen after close");
}

#[test]
fn file_device_psync() {
    exercise(IoEngine::Psync);
}

#[test]
fn file_device_uring() {
    exercise(IoEngine::Uring);
}

#[test]
fn missing_file_without_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_device(&dir.path().join("nope"), &OpenOptions::default()).err();
    assert!(matches!(err, Some(DeviceError::Open { .. })));
}
