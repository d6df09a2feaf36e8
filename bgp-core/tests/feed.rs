//! The route feed: a FIB installer's view of the RIB that never loses a
//! change, coalesces what changed twice, and reports what left.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::task::Poll;
use std::time::Duration;

use bgp_core::speaker::{RouteFeed, Speaker, SpeakerConfig, SpeakerHandle};
use bgp_core::wire::{AsPath, Origin, PathAttributes};
use ipnet::{IpNet, Ipv4Net};

async fn speaker() -> SpeakerHandle {
    let mut c = SpeakerConfig::new(65020, Ipv4Addr::new(10, 104, 0, 1));
    c.listen = vec![SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 104, 0, 1)),
        0,
    )];
    Speaker::start(c).await.unwrap()
}

fn attrs(med: u32) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        med: Some(med),
        ..Default::default()
    }
}

fn prefix(i: u32) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap())
}

/// Applies batches to a map, as a FIB would, until `done` holds or 10 s pass.
async fn follow(
    feed: &mut RouteFeed,
    fib: &mut HashMap<IpNet, Option<u32>>,
    max: usize,
    done: impl Fn(&HashMap<IpNet, Option<u32>>) -> bool,
) -> usize {
    let mut batches = 0;
    while !done(fib) {
        let batch = tokio::time::timeout(Duration::from_secs(10), feed.next(max))
            .await
            .expect("the feed went quiet before the FIB was complete")
            .unwrap();
        assert!(batch.len() <= max, "a batch larger than asked for");
        batches += 1;
        for (p, paths) in batch {
            match paths.first() {
                Some(best) => fib.insert(p, best.attrs.attributes.med),
                None => fib.remove(&p),
            };
        }
    }
    batches
}

#[tokio::test]
async fn a_slow_feed_loses_nothing_and_sees_only_the_latest_state() {
    let s = speaker().await;
    for i in 0..1000 {
        s.announce(prefix(i), attrs(1)).await.unwrap();
    }
    // A feed made now starts with the whole table, in batches of at most 64.
    let mut feed = s.route_feed().await.unwrap();
    let mut fib = HashMap::new();
    let batches = follow(&mut feed, &mut fib, 64, |f| f.len() == 1000).await;
    assert!(batches >= 1000 / 64, "{batches} batches");
    assert!(fib.values().all(|m| *m == Some(1)));

    // While nobody takes: 200 change twice, 100 leave, 50 arrive.
    for i in 0..200 {
        s.announce(prefix(i), attrs(2)).await.unwrap();
        s.announce(prefix(i), attrs(3)).await.unwrap();
    }
    for i in 900..1000 {
        s.withdraw(prefix(i)).await.unwrap();
    }
    for i in 1000..1050 {
        s.announce(prefix(i), attrs(4)).await.unwrap();
    }
    let batch = feed.next(10_000).await.unwrap();
    assert_eq!(batch.len(), 200 + 100 + 50, "each prefix once");
    let gone = batch
        .iter()
        .take_while(|(_, paths)| paths.is_empty())
        .count();
    assert_eq!(gone, 100, "withdrawals come first");
    for (p, paths) in batch {
        match paths.first() {
            Some(best) => fib.insert(p, best.attrs.attributes.med),
            None => fib.remove(&p),
        };
    }
    assert_eq!(fib.len(), 950);
    assert_eq!(fib[&prefix(5)], Some(3), "only the latest state");
    assert_eq!(fib[&prefix(500)], Some(1));
    assert_eq!(fib[&prefix(1040)], Some(4));
    assert!(!fib.contains_key(&prefix(950)));

    // Nothing more: the next call waits for a change.
    let quiet = tokio::time::timeout(Duration::from_millis(200), feed.next(10)).await;
    assert!(quiet.is_err(), "a batch with nothing changed");
    s.withdraw(prefix(0)).await.unwrap();
    let batch = feed.next(10).await.unwrap();
    assert_eq!(batch, vec![(prefix(0), vec![])]);

    // A prefix withdrawn and announced again before the take ends announced.
    s.withdraw(prefix(1)).await.unwrap();
    s.announce(prefix(1), attrs(9)).await.unwrap();
    follow(&mut feed, &mut fib, 10, |f| {
        f.get(&prefix(1)) == Some(&Some(9))
    })
    .await;

    s.shutdown(None).await.unwrap();
    assert!(feed.next(10).await.is_none(), "the speaker stopped");
}

/// `next` dropped after the RIB task took a batch for it (a `select!` that
/// went another way): the next call returns that batch, nothing is lost.
#[tokio::test]
async fn a_cancelled_take_keeps_its_batch() {
    let s = speaker().await;
    for i in 0..100 {
        s.announce(prefix(i), attrs(1)).await.unwrap();
    }
    let mut feed = s.route_feed().await.unwrap();
    let mut fib = HashMap::new();
    let mut cancelled = 0;
    // Enough rounds for 100 routes in batches of 7, twice over.
    for _ in 0..60 {
        // Polled once, then dropped: the take is sent, the reply is not
        // there yet.
        let once = {
            let mut next = std::pin::pin!(feed.next(7));
            std::future::poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx))).await
        };
        match once {
            Poll::Ready(batch) => {
                for (p, paths) in batch.unwrap() {
                    fib.insert(p, paths.len());
                }
            }
            Poll::Pending => cancelled += 1,
        }
        // Let the RIB task answer the abandoned take.
        tokio::task::yield_now().await;
    }
    assert_eq!(fib.len(), 100, "routes lost with cancelled takes");
    assert!(cancelled >= 100 / 7, "{cancelled} takes cancelled");
    assert!(fib.values().all(|n| *n == 1));
    let quiet = tokio::time::timeout(Duration::from_millis(100), feed.next(7)).await;
    assert!(quiet.is_err(), "a batch with nothing changed");
}
