//! The fake Stripe on its own, for tests outside Rust (the browser tests):
//! `fake-stripe [--listen 127.0.0.1:0]` prints
//! `fake-stripe listening on http://…` and serves until killed. Where its
//! events go is set with `POST /_fake/webhook {"url": …, "secret": …}`.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = args.iter().position(|a| a == "--listen").and_then(|i| args.get(i + 1)).map_or("127.0.0.1:0", |s| s);
    let fake = fake_stripe::FakeStripe::default();
    let url = fake.start_on(listen).await?;
    println!("fake-stripe listening on {url}");
    std::future::pending::<()>().await;
    Ok(())
}
