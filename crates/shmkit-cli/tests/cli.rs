//! The `shmkit` binary as a user runs it: exit codes, JSON that parses back, and regions made or
//! read by programs nobody here wrote (Python's `multiprocessing.shared_memory`, a C program
//! compiled with gcc, `ipcs`), on normal and huge pages. Every region is unique to this process
//! and removed afterwards.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;
use shmkit_name::PageSize;
use shmkit_testkit::{
    RegionGuard, SysvGuard, huge_pages_ready, hugetlbfs_ready, unique, unique_name,
};

/// Tests that count huge pages, or run `gc` (which removes every stale region, another test's
/// too), run one at a time.
static HUGE_PAGES: Mutex<()> = Mutex::new(());
static GC: Mutex<()> = Mutex::new(());

fn serial(lock: &'static Mutex<()>) -> MutexGuard<'static, ()> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

fn shmkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmkit")).args(args).output().expect("run shmkit")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `shmkit ARGS`, which must succeed, and parses its stdout as JSON.
fn json(args: &[&str]) -> Value {
    let output = shmkit(args);
    assert!(output.status.success(), "shmkit {args:?} failed: {}", stderr(&output));
    serde_json::from_str(&stdout(&output))
        .unwrap_or_else(|error| panic!("shmkit {args:?}: {error}: {}", stdout(&output)))
}

/// The region of `shmkit ls --json` whose field `field` is `value`.
fn listed(field: &str, value: &str) -> Option<Value> {
    let all = json(&["ls", "--json"]);
    all["regions"]
        .as_array()
        .expect("regions is an array")
        .iter()
        .find(|region| region[field] == value)
        .cloned()
}

fn assert_no_backtrace(output: &Output) {
    let text = stderr(output);
    assert!(!text.contains("panicked") && !text.contains("backtrace"), "{text}");
    assert_eq!(
        text.lines().filter(|line| line.starts_with("shmkit: error:")).count(),
        1,
        "one error line: {text}"
    );
}

#[test]
fn usage_errors_exit_2_and_name_the_bad_value() {
    let name = unique("cli-usage");
    for (args, bad) in [
        (vec!["create", name.as_str(), "--size", "4X"], "4X"),
        (vec!["create", name.as_str(), "--size", "1.5M"], "1.5M"),
        (vec!["create", "bad/name", "--size", "4K"], "bad/name"),
        (vec!["create", name.as_str(), "--size", "4K", "--mode", "999"], "999"),
        (vec!["create", name.as_str(), "--size", "4K", "--page-size", "big"], "big"),
        (vec!["create", name.as_str(), "--size", "4K", "--cpus", "3-1"], "3-1"),
        (vec!["bench", "--size", "8"], "8"),
        (vec!["bench", "--ring", "queue"], "queue"),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        let output = shmkit(&args);
        assert_eq!(output.status.code(), Some(2), "shmkit {args:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(bad),
            "shmkit {args:?} does not name {bad:?}: {}",
            stderr(&output)
        );
        assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
    }
    // Neither --size nor --page-count.
    assert_eq!(shmkit(&["create", &name]).status.code(), Some(2));
    assert!(!Path::new("/dev/shm").join(&name).exists(), "a usage error creates nothing");
    // Help and version are not errors.
    assert_eq!(shmkit(&["--help"]).status.code(), Some(0));
    assert_eq!(shmkit(&["--version"]).status.code(), Some(0));
}

#[test]
fn runtime_errors_exit_1_with_one_line() {
    let name = unique("cli-missing");
    for args in [
        vec!["rm", name.as_str()],
        vec!["info", name.as_str()],
        vec!["ring", "stat", name.as_str()],
    ] {
        let output = shmkit(&args);
        assert_eq!(output.status.code(), Some(1), "shmkit {args:?}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(&name),
            "shmkit {args:?} does not name the region: {}",
            stderr(&output)
        );
        assert_no_backtrace(&output);
    }
    // An existing name is refused, not replaced.
    let guard = RegionGuard(unique_name("cli-exists"));
    let existing = guard.0.as_str();
    assert!(shmkit(&["create", existing, "--size", "4K"]).status.success());
    let again = shmkit(&["create", existing, "--size", "8K"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists"), "{}", stderr(&again));
    assert_no_backtrace(&again);
}

#[test]
fn create_ls_info_rm_round_trip_in_json() {
    let guard = RegionGuard(unique_name("cli-round"));
    let name = guard.0.as_str();
    let created = shmkit(&["create", name, "--size", "10K", "--mode", "640"]);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        stdout(&created).contains("3 normal pages"),
        "10K rounds up to 3 pages: {}",
        stdout(&created)
    );

    let region = listed("name", name).expect("ls lists the new region");
    assert_eq!(region["kind"], "posix");
    assert_eq!(region["path"], format!("/dev/shm/{name}"));
    assert_eq!(region["size"], 12288);
    assert_eq!(region["page_size"], "normal");
    assert_eq!(region["page_size_bytes"], 4096);
    assert_eq!(region["mode"], "0640");
    assert_eq!(region["mappers"], 0);
    assert!(region["sysv_id"].is_null() && region["placement"].is_null());

    let info = json(&["info", name, "--json"]);
    assert_eq!(info["page_count"], 3);
    assert_eq!(info["size"], 12288);
    assert!(info["sysv"].is_null() && info["contents"].is_null());
    assert_eq!(info["processes"].as_array().map(Vec::len), Some(0));

    let removed = shmkit(&["rm", name]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(listed("name", name).is_none(), "rm removed it");
    assert_eq!(shmkit(&["info", name]).status.code(), Some(1));
}

#[test]
fn sizes_take_suffixes() {
    for (size, pages) in [("64K", 16), ("64KiB", 16), ("1m", 256), ("8192", 2)] {
        let guard = RegionGuard(unique_name("cli-size"));
        let name = guard.0.as_str();
        let output = shmkit(&["create", name, "--size", size]);
        assert!(output.status.success(), "--size {size}: {}", stderr(&output));
        assert_eq!(json(&["info", name, "--json"])["page_count"], pages, "--size {size}");
    }
}

#[test]
fn numa_json_describes_every_node() {
    let numa = json(&["numa", "--json"]);
    let nodes = numa["nodes"].as_array().expect("nodes");
    assert!(!nodes.is_empty());
    for node in nodes {
        assert!(node["node"].is_u64() && node["cpus"].is_string() && node["cpu_ids"].is_array());
        for pool in ["huge", "gigantic"] {
            assert!(node[pool]["free"].as_u64() <= node[pool]["total"].as_u64(), "{node}");
        }
    }
    assert!(
        numa["mounts"].is_array() && numa["shmkit_base"].is_string() && numa["cpus"].is_string()
    );
    let text = shmkit(&["numa"]);
    assert!(text.status.success() && stdout(&text).contains("NODE"));
}

/// Python's `multiprocessing.shared_memory` makes a POSIX region with `shm_open`: `ls` and `info`
/// see it with its exact size and its mapper, and `rm` removes it.
#[test]
fn python_shared_memory_is_listed_and_removed() {
    let name = unique("cli-py");
    let script = format!(
        "import sys\n\
         from multiprocessing import shared_memory, resource_tracker\n\
         shm = shared_memory.SharedMemory(create=True, name={name:?}, size=10000)\n\
         resource_tracker.unregister(shm._name, 'shared_memory')\n\
         print('ready', flush=True)\n\
         sys.stdin.readline()\n\
         shm.close()\n"
    );
    let child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("skipped: python3 is not installed");
        return;
    };
    let _guard = RegionGuard(shmkit_name::Name::new(&name).expect("a valid name"));
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    lines.read_line(&mut line).expect("python says ready");
    assert_eq!(line.trim(), "ready", "python3 failed to create the region");

    let region = listed("name", &name).expect("ls lists Python's region");
    assert_eq!(region["kind"], "posix");
    assert_eq!(region["size"], 10000);
    let info = json(&["info", &name, "--json"]);
    assert_eq!(info["size"], 10000);
    assert!(info["page_count"].is_null(), "10000 bytes are not whole pages");
    let python = child.id();
    assert!(
        info["mapper_pids"]
            .as_array()
            .expect("pids")
            .iter()
            .any(|pid| pid.as_u64() == Some(u64::from(python))),
        "python3 (pid {python}) maps it: {info}"
    );
    assert!(info["mappers"].as_u64() >= Some(1));

    let removed = shmkit(&["rm", &name]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert!(
        stdout(&removed).contains("still map it"),
        "rm says the region is still mapped: {}",
        stdout(&removed)
    );
    assert!(!Path::new("/dev/shm").join(&name).exists());
    finish(child);
}

fn finish(mut child: Child) {
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin);
    }
    let status = child.wait().expect("wait for the child");
    assert!(status.success(), "child failed: {status}");
}

/// The `ipcs -m` line of the segment with this key: (shmid, bytes).
fn ipcs_line(key: &str) -> Option<(i32, u64)> {
    let output = Command::new("ipcs").arg("-m").output().ok()?;
    String::from_utf8_lossy(&output.stdout).lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.first() == Some(&key))
            .then(|| (fields[1].parse().unwrap_or(-1), fields[4].parse().unwrap_or(0)))
    })
}

fn ipcs_available() -> bool {
    let found = Command::new("ipcs").arg("-m").output().is_ok_and(|output| output.status.success());
    if !found {
        eprintln!("skipped: ipcs (util-linux) is not installed");
    }
    found
}

/// `shmkit create --kind sysv` makes a segment that `ipcs -m` shows with the same key and size.
#[test]
fn sysv_segments_of_shmkit_show_in_ipcs() {
    if !ipcs_available() {
        return;
    }
    let name = unique("cli-sysv");
    let key = shmkit_os::sysv::SysvKey::of(&shmkit_name::Name::new(&name).expect("valid"));
    let key_text = format!("0x{:08x}", key.get().cast_unsigned());
    let created = shmkit(&["create", &name, "--kind", "sysv", "--size", "8K", "--mode", "0640"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let region = listed("sysv_key", &key_text).expect("ls lists the segment");
    let id = i32::try_from(region["sysv_id"].as_i64().expect("an id")).expect("an i32 id");
    let _guard = SysvGuard(id);
    assert_eq!(region["kind"], "sysv");
    assert_eq!(region["size"], 8192);
    assert_eq!(region["mode"], "0640");
    assert_eq!(ipcs_line(&key_text), Some((id, 8192)), "ipcs -m shows key {key_text}");
    // Found by the name the key came from, and removed.
    let info = json(&["info", &name, "--json"]);
    assert_eq!(info["sysv_id"], id);
    assert!(shmkit(&["rm", &name, "--kind", "sysv"]).status.success());
    assert_eq!(ipcs_line(&key_text), None, "rm removed it");
}

/// A segment made by a C program (compiled here with gcc) shows in `shmkit ls` as in `ipcs -m`,
/// with its attach count, and `shmkit rm` removes it by key.
#[test]
fn sysv_segments_of_a_c_program_show_in_shmkit() {
    if !ipcs_available() {
        return;
    }
    let dir = std::env::temp_dir().join(unique("shmkit-cli-gcc"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let _cleanup = TempDir(dir.clone());
    let source = dir.join("segment.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\n#include <stdlib.h>\n#include <sys/shm.h>\n\
         int main(int argc, char **argv) {\n\
           int id = shmget((key_t)strtoul(argv[1], 0, 16), 20000, IPC_CREAT | IPC_EXCL | 0600);\n\
           if (id < 0) { perror(\"shmget\"); return 1; }\n\
           if (shmat(id, 0, 0) == (void *)-1) { perror(\"shmat\"); return 1; }\n\
           printf(\"%d\\n\", id); fflush(stdout);\n\
           getchar();\n\
           return 0;\n\
         }\n",
    )
    .expect("write the C program");
    let program = dir.join("segment");
    let compiled = Command::new("gcc").arg("-o").arg(&program).arg(&source).output();
    match compiled {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!("gcc failed: {}", String::from_utf8_lossy(&output.stderr)),
        Err(_) => {
            eprintln!("skipped: gcc is not installed");
            return;
        }
    }
    // A key unlikely to be in use: from our pid, in the upper half.
    let key_text = format!("0x{:08x}", 0x7e00_0000 | (std::process::id() & 0x00ff_ffff));
    let mut child = Command::new(&program)
        .arg(&key_text)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the C program");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("the id");
    let id: i32 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the C program failed to create {key_text}: {line:?}"));
    let _guard = SysvGuard(id);

    let region = listed("sysv_key", &key_text).expect("ls lists the C program's segment");
    assert_eq!(region["size"], 20000, "the size the C program asked for");
    assert_eq!(region["sysv_id"], id);
    assert_eq!(region["mappers"], 1, "the C program is attached");
    assert_eq!(ipcs_line(&key_text), Some((id, 20000)));
    let by_id = json(&["info", "--id", &id.to_string(), "--json"]);
    assert_eq!(by_id["sysv_key"], key_text.as_str());
    assert_eq!(by_id["sysv"]["creator_pid"], child.id());

    let removed = shmkit(&["rm", &key_text]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    finish(child);
    assert_eq!(ipcs_line(&key_text), None, "gone once the C program detached");
}

/// Removes a folder on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn meminfo(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/meminfo"))
}

/// `shmkit create` on huge pages makes a file whose pages `/proc/meminfo` counts as used, and
/// `rm` gives them back.
#[test]
fn huge_page_regions_are_accounted_in_meminfo() {
    let _serial = serial(&HUGE_PAGES);
    if !hugetlbfs_ready(PageSize::Huge) || !huge_pages_ready(PageSize::Huge, 2) {
        return;
    }
    let guard = RegionGuard(unique_name("cli-huge"));
    let name = guard.0.as_str();
    let before = meminfo("HugePages_Free");
    let created = shmkit(&["create", name, "--page-size", "huge", "--page-count", "2"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let after = meminfo("HugePages_Free");
    assert_eq!(
        before - after,
        2,
        "the two pages are taken from the pool ({before} free before, {after} after)"
    );
    let region = listed("name", name).expect("listed");
    assert_eq!(region["kind"], "hugetlbfs");
    assert_eq!(region["page_size"], "huge");
    assert_eq!(region["size"], 4 << 20);
    assert!(shmkit(&["rm", name, "--page-size", "huge"]).status.success());
    assert_eq!(meminfo("HugePages_Free"), before, "rm returns them");
}

#[test]
fn bench_checks_every_message_and_leaves_nothing() {
    let bench = json(&["bench", "--messages", "20000", "--size", "100", "--json"]);
    let results = bench["results"].as_array().expect("results");
    let transports: Vec<&str> =
        results.iter().filter_map(|result| result["transport"].as_str()).collect();
    assert_eq!(transports, ["spsc", "bytes", "broadcast", "unix-socket"]);
    for result in results {
        assert_eq!(result["checked"], 40_000, "both phases, every message: {result}");
        assert_eq!(result["lost"], 0);
        assert_eq!(result["latency_ns"]["samples"], 20_000);
        assert_eq!(result["stream_latency_ns"]["samples"], 20, "one in 1024 of 20000 is stamped");
        assert!(result["messages_per_second"].as_f64() > Some(0.0));
        let latency = &result["latency_ns"];
        assert!(
            latency["p50"].as_u64() <= latency["p99"].as_u64()
                && latency["p99"].as_u64() <= latency["p999"].as_u64()
        );
    }
    assert_eq!(bench["message_size"], 100);
    let region = bench["region"].as_str().expect("the region's path");
    assert!(!Path::new(region).exists(), "the bench removed {region}");
}

#[test]
fn bench_runs_one_ring_on_huge_pages() {
    let _serial = serial(&HUGE_PAGES);
    if !hugetlbfs_ready(PageSize::Huge) || !huge_pages_ready(PageSize::Huge, 1) {
        return;
    }
    let bench =
        json(&["bench", "--ring", "spsc", "--messages", "5000", "--page-size", "huge", "--json"]);
    assert_eq!(bench["page_size"], "huge");
    let transports: Vec<&str> = bench["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["transport"].as_str())
        .collect();
    assert_eq!(transports, ["spsc", "unix-socket"]);
    assert!(!Path::new(bench["region"].as_str().expect("path")).exists());
}

/// A pid that is gone: a child's, reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("run true");
    child.wait().expect("reap true");
    child.id()
}

/// `(key, value)` of each line of `shmkit ... stat`'s text (`key: value`, aligned).
fn text_fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.trim().to_owned()))
        .collect()
}

/// `ring stat` on rings placed in a region of `shmkit create` (and traffic through them): what
/// it shows in text and JSON, and the errors for what is not a ring of this shmkit.
#[test]
#[allow(clippy::too_many_lines, reason = "one region, its rings, and every answer on them")]
fn ring_stat_reads_rings_and_names_what_it_cannot() {
    use std::mem::offset_of;
    use std::num::NonZeroU32;
    use std::ptr::NonNull;
    use std::sync::atomic::Ordering;

    use shmkit_os::{Access, MapOptions, Region};
    use shmkit_ring::Header;
    use shmkit_ring::broadcast::{Broadcast, BroadcastConsumer, BroadcastProducer, Flow};
    use shmkit_ring::seqlock::SeqLock;
    use shmkit_ring::spsc::{Consumer, Producer, SpscRing};

    let guard = RegionGuard(unique_name("cli-ring-stat"));
    let name = guard.0.as_str();
    assert!(shmkit(&["create", name, "--size", "64K"]).status.success());
    let mapping = Region::open(&guard.0, None, Access::ReadWrite)
        .and_then(|region| region.map(&MapOptions::new()))
        .expect("map the region");
    let path = format!("/dev/shm/{name}");
    let at = |offset: usize| {
        let ptr = NonNull::new(mapping.as_ptr().wrapping_add(offset)).expect("mapped");
        (ptr, mapping.len() - offset)
    };
    let me = NonZeroU32::new(std::process::id()).expect("a pid");
    let gone = NonZeroU32::new(dead_pid()).expect("a pid");

    // An SPSC ring at 0: 10 values pushed, 3 popped, the consumer's holder gone.
    let (ptr, len) = at(0);
    // SAFETY: the mapping outlives the handles, and is used only through the ring.
    let (mut producer, mut consumer) = unsafe {
        SpscRing::<u64>::init(ptr, len, 16).expect("init");
        (
            Producer::<u64>::attach(ptr, len, me).expect("producer"),
            Consumer::<u64>::attach(ptr, len, gone).expect("consumer"),
        )
    };
    for value in 0..10 {
        assert!(producer.push(value).expect("push"));
    }
    for _ in 0..3 {
        assert!(consumer.pop().expect("pop").is_some());
    }
    let output = shmkit(&["ring", "stat", name]);
    assert!(output.status.success(), "{}", stderr(&output));
    let fields = text_fields(&stdout(&output));
    let expected = [
        ("ring", format!("spsc at offset 0 of {path} (layout version 2)")),
        ("capacity", "16 elements of 8 bytes".to_owned()),
        ("fill", "7 (43.8%)".to_owned()),
        ("producer", format!("position 10, held by pid {me}")),
        ("consumer", format!("position 3, held by pid {gone}, which is gone")),
    ];
    let expected: Vec<(String, String)> =
        expected.into_iter().map(|(key, value)| (key.to_owned(), value)).collect();
    assert_eq!(fields, expected);
    assert_eq!(json(&["info", name, "--json"])["contents"], "shmkit spsc ring");

    // A credit broadcast ring at 16 KiB: 6 messages, the credit consumer has read 2.
    let (ptr, len) = at(16384);
    let flow = Flow::Credit { consumers: 2 };
    // SAFETY: as above.
    let (mut publisher, mut reader) = unsafe {
        Broadcast::<[u64; 4]>::init(ptr, len, 8, flow).expect("init");
        (
            BroadcastProducer::<[u64; 4]>::attach(ptr, len, me).expect("producer"),
            BroadcastConsumer::<[u64; 4]>::attach_credit(ptr, len, me).expect("consumer"),
        )
    };
    for value in 0..6 {
        assert!(publisher.try_publish(&[value; 4]).expect("publish"));
    }
    for _ in 0..2 {
        reader.try_recv().expect("receive");
    }
    drop(publisher);
    let stat = json(&["ring", "stat", name, "--offset", "16384", "--json"]);
    assert_eq!(stat["region"], path.as_str());
    let ring = &stat["rings"][0];
    assert_eq!(ring["offset"], 16384);
    assert_eq!(ring["kind"], "broadcast");
    assert_eq!(ring["version"], 1);
    assert_eq!(ring["capacity"], 8);
    assert_eq!(ring["element_size"], 32);
    assert_eq!(ring["total_size"], 384 + 2 * 128 + 8 * 64);
    assert_eq!(ring["fill"], 4);
    assert_eq!(ring["producer"]["position"], 6);
    assert!(ring["producer"]["owner_pid"].is_null() && ring["producer"]["owner_alive"].is_null());
    assert!(ring["consumer"].is_null());
    assert_eq!(ring["flow"], "credit");
    assert_eq!(ring["overwritten"], 0);
    let credit = &ring["credit_consumers"];
    assert_eq!(credit.as_array().map(Vec::len), Some(1), "{credit}");
    assert_eq!(credit[0]["position"], 2);
    assert_eq!(credit[0]["owner_pid"], me.get());
    assert_eq!(credit[0]["owner_alive"], true);
    assert!(credit[0].get("behind").is_none(), "not a JSON field");
    let text = stdout(&shmkit(&["ring", "stat", name, "--offset", "16384"]));
    assert!(text.contains(&format!("position 2, held by pid {me}, 4 behind")), "{text}");
    assert!(text.contains("4 (50.0%)") && text.contains("flow:"), "{text}");

    // What is not a ring of this shmkit: one error line each, exit 1.
    // SAFETY: the mapping is used only through the seqlock there.
    unsafe { SeqLock::init(at(32768).0, at(32768).1, &[0_u64; 2]) }.expect("seqlock");
    let version = mapping.atomic_u32(offset_of!(Header, version)).expect("the SPSC header");
    version.store(99, Ordering::Relaxed);
    for (offset, message) in [
        ("0", "is a spsc ring of layout version 99, which this shmkit does not know".to_owned()),
        ("32768", "is a seqlock, not a ring".to_owned()),
        ("49152", "holds no published shmkit ring".to_owned()),
        ("64", "holds no published shmkit ring".to_owned()),
        ("65500", "no room for a ring header there".to_owned()),
    ] {
        let output = shmkit(&["ring", "stat", name, "--offset", offset]);
        assert_eq!(output.status.code(), Some(1), "--offset {offset}: {}", stderr(&output));
        assert!(
            stderr(&output).contains(&format!("the ring at offset {offset} of {path}")),
            "{}",
            stderr(&output)
        );
        assert!(stderr(&output).contains(&message), "{}", stderr(&output));
        assert_no_backtrace(&output);
    }
    version.store(shmkit_ring::spsc::LAYOUT_VERSION, Ordering::Relaxed);
    mapping
        .atomic_u64(offset_of!(Header, capacity))
        .expect("the SPSC header")
        .store(12, Ordering::Relaxed);
    let output = shmkit(&["ring", "stat", name]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("capacity"), "{}", stderr(&output));
    assert_no_backtrace(&output);
}

/// A long bench, and its region once it appears (`/dev/shm/shmkit-bench-PID-N`).
#[allow(clippy::zombie_processes, reason = "the caller waits for the child it is handed")]
fn start_long_bench() -> (Child, PathBuf) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .args(["bench", "--messages", "2000000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the bench");
    let prefix = format!("shmkit-bench-{}-", child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = std::fs::read_dir("/dev/shm")
            .expect("/dev/shm")
            .flatten()
            .find(|entry| entry.file_name().to_string_lossy().starts_with(&prefix));
        if let Some(entry) = found {
            return (child, entry.path());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("wait for the bench");
            panic!("the bench made no region in 60 s: {}", stderr(&output));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the bench of region `name` streams through its first ring (its producer holds the
/// role); returns what `ring stat` said then.
fn wait_running(name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Before the bench has written its control block, `ring stat` finds no ring: try again.
        let output = shmkit(&["ring", "stat", name, "--json"]);
        if output.status.success() {
            let stat: Value =
                serde_json::from_str(&stdout(&output)).expect("ring stat --json parses");
            if !stat["rings"][0]["producer"]["owner_pid"].is_null() {
                return stat;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the bench never started streaming: {}",
            stderr(&output)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, signal: &str) {
    let status =
        Command::new("kill").args([signal, &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
}

/// The consumer processes of the bench `pid` (whose command line names its region).
fn consumers_of(region: &Path) -> Vec<u32> {
    let name = region.file_name().expect("a file").to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline);
            (cmdline.contains("__bench-consumer") && cmdline.contains(&name)).then_some(pid)
        })
        .collect()
}

#[test]
fn ctrl_c_removes_the_region_and_stops_the_consumer() {
    let (child, region) = start_long_bench();
    let name = region.file_name().expect("a file").to_string_lossy().into_owned();
    // While it runs, `ring stat` reads its three rings; the SPSC ring is measured first.
    let stat = wait_running(&name);
    let rings = stat["rings"].as_array().expect("rings");
    let kinds: Vec<&str> = rings.iter().filter_map(|ring| ring["kind"].as_str()).collect();
    assert_eq!(kinds, ["spsc", "bytes", "broadcast"]);
    for ring in rings {
        assert!(ring["capacity"].as_u64().is_some_and(u64::is_power_of_two), "{ring}");
        assert!(ring["fill"].as_u64() <= ring["capacity"].as_u64(), "{ring}");
    }
    assert_eq!(rings[0]["producer"]["owner_alive"], true);
    assert!(rings[1]["producer"]["owner_pid"].is_null(), "the byte ring waits its turn");
    signal(&child, "-INT");
    let output = child.wait_with_output().expect("wait for the bench");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("interrupted"), "{}", stderr(&output));
    assert!(!region.exists(), "the bench removed {}", region.display());
    assert_eq!(consumers_of(&region), Vec::<u32>::new(), "the consumer is gone");
}

#[test]
fn gc_removes_the_region_of_a_killed_bench_and_nothing_else() {
    let _serial = serial(&GC);
    // A region made by `shmkit create` records no creator: gc never touches it.
    let kept = RegionGuard(unique_name("cli-gc-kept"));
    assert!(shmkit(&["create", kept.0.as_str(), "--size", "4K"]).status.success());

    let (child, region) = start_long_bench();
    wait_running(&region.file_name().expect("a file").to_string_lossy());
    signal(&child, "-KILL");
    let output = child.wait_with_output().expect("wait for the bench");
    assert!(!output.status.success());
    assert!(region.exists(), "SIGKILL leaves the region behind");
    let path = region.display().to_string();
    let _guard = RegionGuard(
        shmkit_name::Name::new(&region.file_name().expect("file").to_string_lossy()).expect("name"),
    );

    // The consumer dies with its parent (PR_SET_PDEATHSIG); until then gc keeps the region.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let dry = json(&["gc", "--dry-run", "--json"]);
        assert_eq!(dry["dry_run"], true);
        let listed_as_removed = dry["removed"]
            .as_array()
            .expect("removed")
            .iter()
            .any(|entry| entry["path"] == path.as_str());
        if listed_as_removed {
            break;
        }
        assert!(Instant::now() < deadline, "gc never found {path} stale: {dry}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(region.exists(), "a dry run removes nothing");
    let gc = json(&["gc", "--json"]);
    let entry = gc["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .find(|entry| entry["path"] == path.as_str())
        .cloned();
    let entry = entry.expect("gc removed the killed bench's region");
    assert_eq!(entry["what"], "bench region");
    assert!(entry["error"].is_null(), "{entry}");
    assert!(!region.exists());
    assert!(
        Path::new("/dev/shm").join(kept.0.as_str()).exists(),
        "gc left the created region alone"
    );
}

/// A segment of `shmkit-segment` whose creator was killed is stale: gc removes it (through the
/// segment crate's check) once its creator is gone, and not before.
#[test]
fn gc_removes_a_segment_whose_creator_was_killed() {
    const TEST: &str = "gc_removes_a_segment_whose_creator_was_killed";
    if shmkit_testkit::child_role().as_deref() == Some("segment-creator") {
        let segment =
            shmkit_segment::Segment::create(4096, None, shmkit_segment::Implementation::Posix)
                .expect("create a segment");
        shmkit_testkit::tell_parent(&format!("created {}", segment.name()));
        // Killed here: the segment is never removed by its creator.
        shmkit_testkit::wait_for_parent();
        std::process::exit(0);
    }
    let _serial = serial(&GC);
    let mut creator = shmkit_testkit::ChildProcess::spawn(TEST, "segment-creator", &[]);
    let name = creator.expect("created");
    let _guard = RegionGuard(shmkit_name::Name::new(&name).expect("a segment name"));
    let path = format!("/dev/shm/{name}");
    let alive = json(&["gc", "--dry-run", "--json"]);
    assert!(
        !alive["removed"]
            .as_array()
            .expect("removed")
            .iter()
            .any(|entry| entry["path"] == path.as_str()),
        "the creator is alive: {alive}"
    );
    signal_pid(creator.pid(), "-KILL");
    drop(creator); // reaps it
    let gc = json(&["gc", "--json"]);
    let entry = gc["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .find(|entry| entry["path"] == path.as_str())
        .cloned();
    let entry = entry.unwrap_or_else(|| panic!("gc did not remove {path}: {gc}"));
    assert_eq!(entry["what"], "segment");
    assert!(entry["error"].is_null(), "{entry}");
    assert!(!Path::new(&path).exists());
}

fn signal_pid(pid: u32, signal: &str) {
    let status = Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill");
    assert!(status.success());
}
