//! Frames that are ready now, in bursts: a stream adapter for the connection's reader.
//!
//! Owns the chunking rule: every item the inner stream has ready, at most `max`, and a burst ends
//! right after an item `ends` marks (the connection's CONNECT, which changes how the decoder
//! parses the frames after it, so they must be decoded only once the actor has applied it). Does
//! not own what the items mean.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

/// See the module documentation.
pub struct Bursts<S: Stream, F> {
    inner: Pin<Box<S>>,
    max: usize,
    ends: F,
    done: bool,
}

impl<S: Stream, F: Fn(&S::Item) -> bool> Bursts<S, F> {
    pub fn new(inner: S, max: usize, ends: F) -> Self {
        Self {
            inner: Box::pin(inner),
            max: max.max(1),
            ends,
            done: false,
        }
    }
}

impl<S: Stream, F: Fn(&S::Item) -> bool + Unpin> Stream for Bursts<S, F> {
    type Item = Vec<S::Item>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut burst = Vec::new();
        while burst.len() < self.max {
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    let last = (self.ends)(&item);
                    burst.push(item);
                    if last {
                        break;
                    }
                }
                Poll::Ready(None) => {
                    self.done = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if !burst.is_empty() {
            Poll::Ready(Some(burst))
        } else if self.done {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_burst_ends_after_a_marked_item_or_at_its_size() {
        let items = futures::stream::iter(vec![1, 2, 0, 3, 4, 5, 6, 7]);
        let bursts: Vec<Vec<i32>> = Bursts::new(items, 3, |i: &i32| *i == 0).collect().await;
        assert_eq!(bursts, vec![vec![1, 2, 0], vec![3, 4, 5], vec![6, 7]]);
    }

    #[tokio::test]
    async fn a_pending_inner_stream_ends_the_burst_so_far() {
        let (tx, rx) = futures::channel::mpsc::unbounded::<i32>();
        let mut bursts = Bursts::new(rx, 10, |_: &i32| false);
        tx.unbounded_send(1).expect("send");
        tx.unbounded_send(2).expect("send");
        assert_eq!(bursts.next().await, Some(vec![1, 2]));
        tx.unbounded_send(3).expect("send");
        drop(tx);
        assert_eq!(bursts.next().await, Some(vec![3]));
        assert_eq!(bursts.next().await, None);
    }
}
