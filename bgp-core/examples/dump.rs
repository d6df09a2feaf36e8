//! Decodes hex BGP messages (one file per message) and prints them: a debugging aid
//! for fixtures. Usage: `cargo run -p bgp-core --example dump -- [--as2] FILE...`
use bgp_core::wire::{Context, Message};

fn main() {
    let mut ctx = Context::MODERN;
    for arg in std::env::args().skip(1) {
        if arg == "--as2" {
            ctx = Context::LEGACY;
            continue;
        }
        let text = std::fs::read_to_string(&arg).unwrap_or_default();
        let hex: String = text.split_whitespace().collect();
        let Ok(bytes) = hex::decode(&hex) else {
            println!("{arg}: not hex");
            continue;
        };
        let decoded = Message::decode(&bytes, &ctx);
        let re = decoded.as_ref().ok().and_then(|m| m.to_bytes(&ctx).ok());
        let same = re.as_deref() == Some(&bytes[..]);
        println!("{arg}: reencode-identical={same}\n  {decoded:?}");
        if !same && let Some(re) = re {
            println!(
                "  orig {}\n  ours {}",
                hex::encode(&bytes),
                hex::encode(&re)
            );
        }
    }
}
