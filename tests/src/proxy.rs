//! A TCP proxy between the hub and a service (RabbitMQ, PostgreSQL), on
//! loopback, that a test can pause (every byte held, connections left open:
//! the peer is silent, as behind a dead network) or cut (every connection
//! closed), then resume.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    /// Where the hub connects instead of the service.
    pub addr: SocketAddr,
    paused: watch::Sender<bool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a port of its own, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (paused, _) = watch::channel(false);
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let paused = paused.clone();
            let connections = connections.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let rx = paused.subscribe();
                    let task = tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(target).await {
                            forward(client, server, rx).await;
                        }
                    });
                    connections.lock().expect("lock").push(task);
                }
            }
        });
        Proxy {
            addr,
            paused,
            connections,
            accept,
        }
    }

    /// Holds every byte in both directions; connections stay open.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    /// Lets bytes through again.
    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    /// Closes every open connection (new ones are accepted).
    pub fn cut(&self) {
        for task in self.connections.lock().expect("lock").drain(..) {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn forward(client: TcpStream, server: TcpStream, paused: watch::Receiver<bool>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, paused.clone());
    let down = pump(server_read, client_write, paused);
    // Either side closing ends the connection.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Paused: neither read (the sender's window fills) nor write.
        while *paused.borrow_and_update() {
            if paused.changed().await.is_err() {
                return;
            }
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while *paused.borrow_and_update() {
            if paused.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
