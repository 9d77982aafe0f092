//! SIGKILL while producers append: after a restart on the same directory
//! every acknowledged ID is there, over several kill-restart rounds.

mod fault_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use fault_support::{all_ids, Client, ProcessLimits, Server, TempDir, Value};

const PRODUCERS: usize = 4;
const ROUNDS: usize = 3;
/// How long producers run before the kill.
const LOAD_TIME: Duration = Duration::from_millis(1500);

/// XADDs to `key` until the server goes away or `stop` is set; returns the
/// acknowledged IDs.
fn produce(port: u16, key: &'static str, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut acked = Vec::new();
    let Ok(mut client) = Client::connect(port) else {
        return acked;
    };
    let value = "x".repeat(200);
    while !stop.load(Ordering::Relaxed) {
        match client.command(&["XADD", key, "*", "f", &value]) {
            Ok(Value::Bulk(id)) => acked.push(String::from_utf8(id).unwrap()),
            Ok(other) => panic!("XADD gave {other:?}"),
            // The kill: the reply never came, so the entry is not ours.
            Err(_) => break,
        }
    }
    acked
}

#[test]
fn every_acknowledged_id_survives_repeated_sigkill() {
    let dir = TempDir::new("kill-append");
    let keys = ["a", "b", "a", "c"];
    let mut acked: Vec<HashSet<String>> = vec![HashSet::new(); keys.len()];
    for round in 0..ROUNDS {
        let mut server = Server::start(dir.path(), &[], ProcessLimits::default());
        let stop = Arc::new(AtomicBool::new(false));
        let producers: Vec<_> = keys
            .iter()
            .take(PRODUCERS)
            .map(|&key| {
                let (port, stop) = (server.port, stop.clone());
                thread::spawn(move || produce(port, key, stop))
            })
            .collect();
        thread::sleep(LOAD_TIME);
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for (n, producer) in producers.into_iter().enumerate() {
            let ids = producer.join().unwrap();
            assert!(
                !ids.is_empty(),
                "round {round}: producer {n} got no ID back"
            );
            acked[n].extend(ids);
        }
        drop(server);

        // Restart: everything acknowledged so far is there.
        let server = Server::start(dir.path(), &[], ProcessLimits::default());
        let mut client = server.connect();
        for (n, key) in keys.iter().enumerate() {
            let present: HashSet<String> = all_ids(&mut client, key).into_iter().collect();
            let missing: Vec<&String> = acked[n].difference(&present).collect();
            assert!(
                missing.is_empty(),
                "round {round}: {} acknowledged IDs of {key} missing, e.g. {:?}",
                missing.len(),
                missing.first()
            );
        }
    }
}
