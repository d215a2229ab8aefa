//! The connection threads. Each one accepts a connection itself and serves
//! it, with no hand-over between threads (a wake-up and a context switch per
//! request, which is most of what answering costs). A thread that accepts
//! while no other one is waiting in `accept` starts one more first, so a new
//! connection never waits behind a slow one, up to [`MAX_THREADS`]; threads
//! stay for the server's life. With every thread busy (slow or stuck clients,
//! each bounded by the read deadline) connections wait in the kernel's
//! listen backlog, and past that the kernel refuses them and the SDKs retry.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

/// Connections served at once: far above what one command's SDK clients
/// open in parallel.
const MAX_THREADS: usize = 64;
/// Connection threads do little and hold their buffer on the heap.
const THREAD_STACK: usize = 128 * 1024;

struct Pool<F> {
    listener: TcpListener,
    handler: F,
    /// Threads in `accept`, and threads in all.
    waiting: AtomicUsize,
    threads: AtomicUsize,
}

/// Serves connections on `listener` with `handler` for as long as the process
/// lives. Fails only if not even the first thread can start.
pub(super) fn start<F>(listener: TcpListener, handler: F) -> std::io::Result<()>
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let pool = Arc::new(Pool {
        listener,
        handler,
        waiting: AtomicUsize::new(0),
        threads: AtomicUsize::new(1),
    });
    spawn(pool).map_err(|e| std::io::Error::other(format!("cannot start a thread: {e}")))
}

fn spawn<F>(pool: Arc<Pool<F>>) -> std::io::Result<()>
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    thread::Builder::new()
        .name("awsmfa-conn".into())
        .stack_size(THREAD_STACK)
        .spawn(move || work(&pool))
        .map(drop)
}

fn work<F>(pool: &Arc<Pool<F>>)
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    loop {
        pool.waiting.fetch_add(1, Ordering::SeqCst);
        let accepted = pool.listener.accept();
        let others = pool.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
        let Ok((stream, _)) = accepted else {
            // Out of descriptors, most likely: no busy loop meanwhile.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        // Nobody left in accept: one more thread, before this one is busy.
        if others == 0 {
            let below_max = pool.threads.fetch_add(1, Ordering::SeqCst) < MAX_THREADS;
            if !below_max || spawn(pool.clone()).is_err() {
                pool.threads.fetch_sub(1, Ordering::SeqCst);
            }
        }
        (pool.handler)(stream);
    }
}
