//! The power-loss filesystem keeps exactly what was synced: named scenarios.
//! Needs FUSE (`/dev/fuse` and `fusermount3` from the Debian package fuse3).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use hil_tests::powerfs::{CutMode, Mounted};

mod common;

fn setup(mode: CutMode) -> (tempfile::TempDir, Mounted) {
    let t = tempfile::tempdir().unwrap();
    for d in ["backing", "trash", "mnt"] {
        std::fs::create_dir(t.path().join(d)).unwrap();
    }
    let m = Mounted::mount(
        &t.path().join("backing"),
        &t.path().join("trash"),
        &t.path().join("mnt"),
        mode,
        7,
    )
    .unwrap();
    (t, m)
}

fn fsync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

#[test]
fn synced_data_survives_and_unsynced_data_does_not() {
    if !common::fuse_available() {
        return;
    }
    let (t, m) = setup(CutMode::DropAll);
    let mnt = t.path().join("mnt");
    let mut f = File::create(mnt.join("a")).unwrap();
    f.write_all(b"durable").unwrap();
    f.sync_all().unwrap();
    fsync_dir(&mnt);
    f.write_all(b" and volatile").unwrap();
    assert_eq!(
        std::fs::read(mnt.join("a")).unwrap(),
        b"durable and volatile"
    );
    // Created but never synced: gone after the cut.
    File::create(mnt.join("b"))
        .unwrap()
        .write_all(b"x")
        .unwrap();
    m.cutter.cut();
    assert!(
        std::fs::read(mnt.join("a")).is_err(),
        "a dead disk still answers"
    );
    drop(f);
    m.unmount().unwrap();
    let backing = t.path().join("backing");
    assert_eq!(std::fs::read(backing.join("a")).unwrap(), b"durable");
    assert!(!backing.join("b").exists());
}

#[test]
fn a_rename_without_a_directory_sync_is_undone() {
    if !common::fuse_available() {
        return;
    }
    let (t, m) = setup(CutMode::DropAll);
    let mnt = t.path().join("mnt");
    std::fs::write(mnt.join("cfg"), b"old").unwrap();
    File::open(mnt.join("cfg")).unwrap().sync_all().unwrap();
    fsync_dir(&mnt);
    // The safe pattern, except for the last directory sync.
    let mut f = File::create(mnt.join("cfg.tmp")).unwrap();
    f.write_all(b"new").unwrap();
    f.sync_all().unwrap();
    std::fs::rename(mnt.join("cfg.tmp"), mnt.join("cfg")).unwrap();
    m.cutter.cut();
    drop(f);
    m.unmount().unwrap();
    assert_eq!(std::fs::read(t.path().join("backing/cfg")).unwrap(), b"old");
}

#[test]
fn a_prefix_keeps_the_first_writes_and_a_torn_write_is_half_there() {
    if !common::fuse_available() {
        return;
    }
    let (t, m) = setup(CutMode::TornHalf(1));
    let mnt = t.path().join("mnt");
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(mnt.join("log"))
        .unwrap();
    f.sync_all().unwrap();
    fsync_dir(&mnt);
    f.write_all(b"first.").unwrap();
    f.write_all(b"second").unwrap();
    f.write_all(b"third.").unwrap();
    m.cutter.cut();
    drop(f);
    m.unmount().unwrap();
    assert_eq!(
        std::fs::read(t.path().join("backing/log")).unwrap(),
        b"first.sec"
    );
}

#[test]
fn the_cut_can_come_at_the_nth_sync() {
    if !common::fuse_available() {
        return;
    }
    let (t, m) = setup(CutMode::DropAll);
    m.control
        .cut_at_sync
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let mnt = t.path().join("mnt");
    let mut f = File::create(mnt.join("n")).unwrap();
    fsync_dir(&mnt); // sync 1
    f.write_all(b"one").unwrap();
    f.sync_all().unwrap(); // sync 2
    f.write_all(b"two").unwrap();
    assert!(f.sync_all().is_err(), "sync 3 is the cut"); // sync 3
    drop(f);
    m.unmount().unwrap();
    assert_eq!(std::fs::read(t.path().join("backing/n")).unwrap(), b"one");
}

/// The node's write-rename pattern (`uplink::store::durable::replace_atomically`,
/// used for the id reservation and, later, for models and configuration),
/// cut at every sync call and in every mode: the file is always the old or
/// the new content.
#[test]
fn an_atomic_replace_is_old_or_new_after_any_cut() {
    if !common::fuse_available() {
        return;
    }
    let old = b"version = 1\n".repeat(300);
    let new = b"version = 2, longer\n".repeat(400);
    for mode in [
        CutMode::DropAll,
        CutMode::Prefix(1),
        CutMode::Prefix(3),
        CutMode::TornHalf(1),
        CutMode::Garbage4k(2),
    ] {
        for at_sync in 1..=3 {
            let (t, m) = setup(mode);
            let mnt = t.path().join("mnt");
            std::fs::write(mnt.join("model.toml"), &old).unwrap();
            File::open(mnt.join("model.toml"))
                .unwrap()
                .sync_all()
                .unwrap();
            fsync_dir(&mnt);
            m.control
                .syncs
                .store(0, std::sync::atomic::Ordering::SeqCst);
            m.control
                .cut_at_sync
                .store(at_sync, std::sync::atomic::Ordering::SeqCst);
            let r = uplink::store::durable::replace_atomically(&mnt.join("model.toml"), &new);
            m.cutter.cut();
            m.unmount().unwrap();
            let got = std::fs::read(t.path().join("backing/model.toml")).unwrap_or_default();
            assert!(
                got == old || got == new,
                "{mode} at sync {at_sync}: {} bytes, neither old nor new",
                got.len()
            );
            if r.is_ok() {
                assert_eq!(
                    got, new,
                    "{mode} at sync {at_sync}: acknowledged but not durable"
                );
            }
        }
    }
}

#[test]
fn a_renamed_file_stays_usable_under_its_new_name() {
    if !common::fuse_available() {
        return;
    }
    // sled writes `snap.N.generating` and renames it to `snap.N`; the node
    // then opens and fsyncs `snap.N`. The filesystem once kept the renamed
    // inode's path as `snap.N/`, which fails with ENOTDIR.
    let (t, m) = setup(CutMode::DropAll);
    let mnt = t.path().join("mnt");
    let mut f = File::create(mnt.join("snap.generating")).unwrap();
    f.write_all(b"snapshot").unwrap();
    f.sync_all().unwrap();
    std::fs::rename(mnt.join("snap.generating"), mnt.join("snap")).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let reopened = OpenOptions::new()
        .read(true)
        .write(true)
        .open(mnt.join("snap"))
        .unwrap();
    reopened.sync_all().unwrap();
    assert!(reopened.metadata().unwrap().is_file());
    drop(reopened);
    assert_eq!(std::fs::read(mnt.join("snap")).unwrap(), b"snapshot");
    m.unmount().unwrap();
}

/// A data directory made on first start must survive a cut with everything
/// in it. `create_dir_all` leaves the new entries volatile (the long sweep
/// lost a whole first-run store that way); `create_dir_durably` fsyncs the
/// directory holding each new entry.
#[test]
fn a_directory_tree_survives_only_when_created_durably() {
    if !common::fuse_available() {
        return;
    }
    let (t, m) = setup(CutMode::DropAll);
    let mnt = t.path().join("mnt");
    // Two durable homes, so that syncing one does not sync the other's entries.
    std::fs::create_dir(mnt.join("a")).unwrap();
    std::fs::create_dir(mnt.join("b")).unwrap();
    fsync_dir(&mnt);
    std::fs::create_dir_all(mnt.join("a/plain/store")).unwrap();
    uplink::store::durable::create_dir_durably(&mnt.join("b/durable/store")).unwrap();
    // Already there: nothing to do, no error.
    uplink::store::durable::create_dir_durably(&mnt.join("b/durable/store")).unwrap();
    for dir in ["a/plain/store", "b/durable/store"] {
        let mut f = File::create(mnt.join(dir).join("db")).unwrap();
        f.write_all(b"events").unwrap();
        f.sync_all().unwrap();
        fsync_dir(&mnt.join(dir));
    }
    m.cutter.cut();
    m.unmount().unwrap();
    let backing = t.path().join("backing");
    assert_eq!(
        std::fs::read(backing.join("b/durable/store/db")).unwrap(),
        b"events"
    );
    assert!(
        !backing.join("a/plain").exists(),
        "the filesystem kept a directory entry that was never synced"
    );
}
