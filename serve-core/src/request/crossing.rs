//! How a stream argument crosses to a replica in another process (cluster mode).
//!
//! A stream cannot be copied into a message: its items do not exist yet. So the argument tuple
//! carries a small descriptor instead, a [`StreamRef`] (the calling node and an id there), and the
//! items follow on demand:
//!
//! * **Encoding** (the caller). The request plane encodes a call's argument tuple inside
//!   [`lending`]. An [`ArgStream`](super::arg_stream::ArgStream) met while encoding lends its
//!   stream to the plane ([`StreamPlane::lend`]) and encodes as its descriptor. The
//!   [`LentStreams`] that `lending` returns travel with the call; when the call ends (answered,
//!   cancelled, failed) they are released, which drops a stream nobody pulled and stops the
//!   pumping of one that was.
//! * **Decoding** (the serving node). The plane decodes a call's argument tuple inside
//!   [`pulling`]. A descriptor met while decoding becomes an `ArgStream` whose items the plane
//!   pulls from the calling node ([`StreamPlane::pull`]) when the method first reads it, with the
//!   flow control of a streaming call run the other way (the calling node sends a window of items
//!   ahead, the reader gives credit as it takes them).
//!
//! Both are thread-local contexts around a synchronous encode or decode: the generated encoders and
//! decoders stay plain postcard calls, and a call in one process never enters either (its stream
//! is passed as a plain value). An `ArgStream` encoded or decoded outside them is an error.

// Only the NATS request plane (feature `cluster`) lends and pulls.
#![cfg_attr(not(feature = "cluster"), allow(dead_code))]

use std::borrow::Cow;
use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::ServeError;

/// A lent stream's items, encoded, as the calling node sends them.
pub(crate) type EncodedItems = Pin<Box<dyn Stream<Item = Result<Vec<u8>, ServeError>> + Send>>;

/// A pulled stream's items, encoded, as the serving node receives them.
pub(crate) type PulledItems = Pin<Box<dyn Stream<Item = Result<Bytes, ServeError>> + Send>>;

/// What a stream argument encodes as: the node that holds the stream, and its id there.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StreamRef<'a> {
    /// The node that lent it (the caller).
    #[serde(borrow)]
    pub(crate) node: Cow<'a, str>,
    /// Its id among the streams that node lent.
    pub(crate) id: u64,
}

/// A stream argument lent to the request plane: the plane takes its items when a node pulls it.
pub(crate) trait Source: Send + Sync {
    /// The items, encoded; `None` once taken.
    fn take(&self) -> Option<EncodedItems>;
}

/// The request plane, as stream arguments see it.
pub(crate) trait StreamPlane: Send + Sync {
    /// This node's id, which the descriptors of the streams it lends name.
    fn node(&self) -> &Arc<str>;
    /// Holds `source` until a node pulls it or its call ends; returns its id.
    fn lend(&self, source: Arc<dyn Source>) -> u64;
    /// The calls that lent `ids` ended: drops the streams not pulled, stops pumping the others.
    fn release(&self, ids: &[u64]);
    /// The items of the stream `at` names, pulled from its node once first polled. Dropping the
    /// stream stops the pumping on that node.
    fn pull(self: Arc<Self>, at: StreamRef<'_>) -> PulledItems;
}

/// The stream arguments one call lent: released when it is dropped, with the call.
#[must_use = "dropping it releases the streams the call lent"]
pub(crate) struct LentStreams {
    /// Set when something was lent.
    plane: Option<Arc<dyn StreamPlane>>,
    ids: Vec<u64>,
}

impl LentStreams {
    /// Nothing lent.
    pub(crate) const NONE: Self = Self {
        plane: None,
        ids: Vec::new(),
    };

    /// How many streams were lent.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

impl Drop for LentStreams {
    fn drop(&mut self) {
        if let Some(plane) = &self.plane {
            plane.release(&self.ids);
        }
    }
}

impl std::fmt::Debug for LentStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LentStreams").field(&self.ids).finish()
    }
}

struct Lending {
    plane: Arc<dyn StreamPlane>,
    ids: Vec<u64>,
}

thread_local! {
    static LENDING: RefCell<Option<Lending>> = const { RefCell::new(None) };
    static PULLING: RefCell<Option<Arc<dyn StreamPlane>>> = const { RefCell::new(None) };
}

/// Puts a thread-local back as it was: by [`Restore::take`], or when dropped on the way out of a
/// panicking `encode` or `decode`.
struct Restore<T: 'static> {
    key: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    /// What the thread-local held before; `None` once put back.
    before: Option<Option<T>>,
}

impl<T: 'static> Restore<T> {
    fn set(key: &'static std::thread::LocalKey<RefCell<Option<T>>>, value: T) -> Self {
        let before = key.with(|cell| cell.replace(Some(value)));
        Self {
            key,
            before: Some(before),
        }
    }

    /// Puts it back; returns what the context holds now.
    fn take(mut self) -> Option<T> {
        let before = self.before.take().flatten();
        self.key.with(|cell| cell.replace(before))
    }
}

impl<T: 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        if let Some(before) = self.before.take() {
            let _ = self.key.try_with(|cell| {
                if let Ok(mut cell) = cell.try_borrow_mut() {
                    *cell = before;
                }
            });
        }
    }
}

/// Runs `encode` (a call's argument encoder) so that the stream arguments it meets are lent to
/// `plane`; returns its result and what was lent.
pub(crate) fn lending<R>(
    plane: &Arc<dyn StreamPlane>,
    encode: impl FnOnce() -> R,
) -> (R, LentStreams) {
    let context = Lending {
        plane: plane.clone(),
        ids: Vec::new(),
    };
    let restore = Restore::set(&LENDING, context);
    let result = encode();
    let lent = match restore.take() {
        Some(Lending { plane, ids }) if !ids.is_empty() => LentStreams {
            plane: Some(plane),
            ids,
        },
        _ => LentStreams::NONE,
    };
    (result, lent)
}

/// Runs `decode` (a call's argument decoder) so that the stream arguments it meets are pulled
/// through `plane`.
pub(crate) fn pulling<R>(plane: Arc<dyn StreamPlane>, decode: impl FnOnce() -> R) -> R {
    let restore = Restore::set(&PULLING, plane);
    let result = decode();
    drop(restore.take());
    result
}

/// Lends the source `share` makes to the plane of the current [`lending`] context; `None` (and
/// `share` is not called) outside one.
pub(crate) fn lend(share: impl FnOnce() -> Arc<dyn Source>) -> Option<StreamRef<'static>> {
    LENDING.with(|cell| {
        let mut cell = cell.borrow_mut();
        let lending = cell.as_mut()?;
        let id = lending.plane.lend(share());
        lending.ids.push(id);
        Some(StreamRef {
            node: Cow::Owned(lending.plane.node().to_string()),
            id,
        })
    })
}

/// The items of the stream `at` names, through the plane of the current [`pulling`] context;
/// `None` outside one.
pub(crate) fn pull(at: StreamRef<'_>) -> Option<PulledItems> {
    let plane = PULLING.with(|cell| cell.borrow().clone())?;
    Some(plane.pull(at))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::StreamExt;

    use super::*;

    /// A plane that records what happens to what it lends, and pulls nothing.
    #[derive(Default)]
    struct Recording {
        node: Arc<str>,
        lent: Mutex<Vec<(u64, Arc<dyn Source>)>>,
        released: Mutex<Vec<u64>>,
        pulled: Mutex<Vec<(String, u64)>>,
    }

    impl StreamPlane for Recording {
        fn node(&self) -> &Arc<str> {
            &self.node
        }
        fn lend(&self, source: Arc<dyn Source>) -> u64 {
            let mut lent = self.lent.lock().unwrap();
            let id = lent.len() as u64 + 7;
            lent.push((id, source));
            id
        }
        fn release(&self, ids: &[u64]) {
            self.released.lock().unwrap().extend_from_slice(ids);
        }
        fn pull(self: Arc<Self>, at: StreamRef<'_>) -> PulledItems {
            self.pulled
                .lock()
                .unwrap()
                .push((at.node.into_owned(), at.id));
            futures::stream::iter([Ok(Bytes::from_static(b"x"))]).boxed()
        }
    }

    struct Once(Mutex<Option<EncodedItems>>);

    impl Source for Once {
        fn take(&self) -> Option<EncodedItems> {
            self.0.lock().unwrap().take()
        }
    }

    fn source() -> Arc<dyn Source> {
        Arc::new(Once(Mutex::new(Some(
            futures::stream::iter([Ok(vec![1u8])]).boxed(),
        ))))
    }

    #[test]
    fn what_is_lent_while_encoding_is_released_when_the_call_lets_go() {
        let recording = Arc::new(Recording {
            node: "head".into(),
            ..Default::default()
        });
        let plane: Arc<dyn StreamPlane> = recording.clone();
        let (refs, lent) = lending(&plane, || [lend(source), lend(source)]);
        let refs = refs.map(Option::unwrap);
        assert_eq!(
            refs.map(|r| (r.node.into_owned(), r.id)),
            [("head".to_owned(), 7), ("head".to_owned(), 8)]
        );
        assert_eq!(lent.len(), 2);
        assert!(recording.released.lock().unwrap().is_empty());
        drop(lent);
        assert_eq!(*recording.released.lock().unwrap(), [7, 8]);
        // Outside the context nothing is lent, and the source is not even made.
        assert!(lend(|| unreachable!()).is_none());
        // A call that lent nothing holds nothing.
        let ((), lent) = lending(&plane, || ());
        assert_eq!(lent.len(), 0);
    }

    #[test]
    fn a_descriptor_is_pulled_only_inside_the_decoding_context() {
        let recording = Arc::new(Recording::default());
        let at = || StreamRef {
            node: "w1".into(),
            id: 3,
        };
        assert!(pull(at()).is_none());
        let pulled = pulling(recording.clone(), || pull(at()));
        assert!(pulled.is_some());
        assert_eq!(*recording.pulled.lock().unwrap(), [("w1".to_owned(), 3)]);
        assert!(pull(at()).is_none(), "the context ends with the decode");
    }

    #[test]
    fn a_panicking_encoder_leaves_no_context_behind() {
        let plane: Arc<dyn StreamPlane> = Arc::new(Recording::default());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lending(&plane, || panic!("a user's Serialize panicked"))
        }));
        assert!(panicked.is_err());
        assert!(lend(|| unreachable!()).is_none());
    }

    #[test]
    fn a_descriptor_is_a_few_bytes_and_round_trips() {
        let at = StreamRef {
            node: "head".into(),
            id: 300,
        };
        let bytes = postcard::to_stdvec(&at).unwrap();
        assert_eq!(bytes.len(), 1 + 4 + 2);
        assert_eq!(postcard::from_bytes::<StreamRef<'_>>(&bytes).unwrap(), at);
    }
}
