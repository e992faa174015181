//! `chat-bare-broadcast [ADDR]`: the bare WebSocket fan-out every benchmark compares
//! against (see `chat_loadgen::bare`).

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("bare fan-out listening on {}", listener.local_addr()?);
    chat_loadgen::bare::run(listener).await?;
    Ok(())
}
