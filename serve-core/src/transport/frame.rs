//! The messages of the NATS request plane, and their bytes.
//!
//! * A **call** goes to the serving node's call subject, with the caller's inbox as its reply
//!   subject: a postcard [`CallHead`] (replica, method, stream window), then the argument tuple's
//!   bytes as they are (no second copy or length prefix). A stream argument in the tuple is a
//!   descriptor (`request::crossing::StreamRef`); the serving node pulls its items with a call of
//!   its own to the caller ([`Op::Pull`]), which the caller answers like a streaming call.
//! * Each **reply** to that inbox starts with one tag byte: a unary result, an error (a postcard
//!   `ServeError`), a stream item, or the end of a stream.
//! * A **control** message goes to the serving node's control subject: cancel a request, or give
//!   a stream more credit (the consumer took that many items).
//!
//! Anything that does not parse is an error the caller logs and drops; nothing here panics on
//! foreign bytes.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, ServeError};

/// The head of a call message.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct CallHead<'a> {
    /// The replica's key on the serving node; for a [`Op::Pull`], the stream argument's id on
    /// the node that lent it.
    pub(crate) replica: u64,
    /// The method's name.
    pub(crate) method: &'a str,
    /// 0 for a unary call; for a streaming call, how many items the producer may send before the
    /// consumer gives credit.
    pub(crate) window: u32,
    /// What is asked: a method call, or one of the replica's lifecycle hooks.
    pub(crate) op: Op,
    /// The multiplexed model id the call was sent for, if any. The reply to a unary call that has
    /// one reports the model ids the replica holds ([`value_with_models`]).
    pub(crate) model_id: Option<&'a str>,
}

/// What a call message asks of a replica.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum Op {
    /// Call `method` with the argument tuple.
    Call,
    /// Run its `check_health` (no method, no arguments).
    CheckHealth,
    /// Hand its `reconfigure` the `user_config` that follows, as JSON.
    Reconfigure,
    /// Send the items of the stream argument `replica` names, which one of the receiving node's
    /// calls lent (no method, no arguments): answered like a streaming call, `window` ahead.
    Pull,
}

/// A call message: `head`, then `args`.
pub(crate) fn call(head: &CallHead<'_>, args: &[u8]) -> Result<Bytes, ServeError> {
    let mut out = postcard::to_extend(head, Vec::with_capacity(24 + args.len()))
        .map_err(|e| wire(format!("cannot encode a call: {e}")))?;
    out.extend_from_slice(args);
    Ok(Bytes::from(out))
}

/// Splits a call message into its head and its argument bytes.
pub(crate) fn parse_call(bytes: &[u8]) -> Result<(CallHead<'_>, &[u8]), ServeError> {
    postcard::take_from_bytes(bytes).map_err(|e| wire(format!("a malformed call message: {e}")))
}

const VALUE: u8 = 0;
const ERROR: u8 = 1;
const ITEM: u8 = 2;
const END: u8 = 3;
const VALUE_WITH_MODELS: u8 = 4;

/// A reply, as the caller reads it.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The result of a unary call, and, for a call sent for a multiplexed model id, the model ids
    /// its replica holds now.
    Value(Bytes, Option<Vec<std::sync::Arc<str>>>),
    /// The call failed (a stream: after the items sent before).
    Error(ServeError),
    /// A stream's next item.
    Item(Bytes),
    /// The stream ended whole.
    End,
}

fn tagged(tag: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(1 + body.len());
    out.put_u8(tag);
    out.extend_from_slice(body);
    out.freeze()
}

/// The reply carrying a unary call's encoded result.
pub(crate) fn value(body: &[u8]) -> Bytes {
    tagged(VALUE, body)
}

/// The reply carrying a unary call's encoded result and the model ids its replica holds (a call
/// sent for a multiplexed model id): the tag, the ids (postcard), then the result as it is.
pub(crate) fn value_with_models(body: &[u8], models: &[std::sync::Arc<str>]) -> Bytes {
    let ids: Vec<&str> = models.iter().map(|id| &**id).collect();
    let mut out = vec![VALUE_WITH_MODELS];
    match postcard::to_extend(&ids, out) {
        Ok(encoded) => out = encoded,
        // A list of strings always encodes; were it not to, the result still crosses.
        Err(_) => return value(body),
    }
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// The reply carrying a stream's next encoded item.
pub(crate) fn item(body: &[u8]) -> Bytes {
    tagged(ITEM, body)
}

/// The reply ending a stream.
pub(crate) fn end() -> Bytes {
    Bytes::from_static(&[END])
}

/// The reply carrying an error. An error that cannot be encoded still crosses, as its message.
pub(crate) fn error(err: &ServeError) -> Bytes {
    let body = postcard::to_stdvec(err).unwrap_or_else(|_| {
        let plain = ServeError::new(err.kind()).with_message(err.to_string());
        postcard::to_stdvec(&plain).unwrap_or_default()
    });
    tagged(ERROR, &body)
}

/// Reads a reply.
pub(crate) fn parse_reply(mut payload: Bytes) -> Result<Reply, ServeError> {
    if payload.is_empty() {
        return Err(wire("an empty reply".to_owned()));
    }
    let tag = payload[0];
    let body = payload.split_off(1);
    match tag {
        VALUE => Ok(Reply::Value(body, None)),
        VALUE_WITH_MODELS => {
            let (ids, rest) = postcard::take_from_bytes::<Vec<&str>>(&body)
                .map_err(|e| wire(format!("a malformed model list: {e}")))?;
            let ids = ids.into_iter().map(std::sync::Arc::from).collect();
            let value = body.slice(body.len() - rest.len()..);
            Ok(Reply::Value(value, Some(ids)))
        }
        ITEM => Ok(Reply::Item(body)),
        END if body.is_empty() => Ok(Reply::End),
        ERROR => postcard::from_bytes::<ServeError>(&body)
            .map(Reply::Error)
            .map_err(|e| wire(format!("a malformed error reply: {e}"))),
        _ => Err(wire(format!("a reply with unknown tag {tag}"))),
    }
}

/// A control message to a serving node, about the request answering to `reply`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) enum Control<'a> {
    /// The caller gave up: cancel the request (and what it started).
    Cancel { reply: &'a str },
    /// The caller took `items` more items of the stream: the producer may send that many more.
    Credit { reply: &'a str, items: u32 },
}

/// A control message.
pub(crate) fn control(control: &Control<'_>) -> Bytes {
    // A control message is a short string and a number: encoding it cannot fail.
    Bytes::from(postcard::to_stdvec(control).unwrap_or_default())
}

/// Reads a control message.
pub(crate) fn parse_control(bytes: &[u8]) -> Result<Control<'_>, ServeError> {
    postcard::from_bytes(bytes).map_err(|e| wire(format!("a malformed control message: {e}")))
}

fn wire(message: String) -> ServeError {
    ServeError::new(ErrorKind::Wire).with_message(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_splits_into_its_head_and_the_argument_bytes() {
        let head = CallHead {
            replica: 7,
            method: "say_hello",
            window: 32,
            op: Op::Call,
            model_id: Some("customer-42"),
        };
        let bytes = call(&head, b"\x04Dora").unwrap();
        let (parsed, args) = parse_call(&bytes).unwrap();
        assert_eq!(parsed, head);
        assert_eq!(args, b"\x04Dora");
        assert!(parse_call(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn a_pull_names_the_lent_stream_and_carries_no_arguments() {
        let head = CallHead {
            replica: 12,
            method: "",
            window: 64,
            op: Op::Pull,
            model_id: None,
        };
        let bytes = call(&head, &[]).unwrap();
        assert!(bytes.len() <= 6, "{bytes:?}");
        let (parsed, args) = parse_call(&bytes).unwrap();
        assert_eq!(parsed, head);
        assert!(args.is_empty());
    }

    #[test]
    fn replies_keep_their_kind_and_errors_their_fields() {
        assert!(matches!(parse_reply(value(b"ab")).unwrap(), Reply::Value(b, None) if b == "ab"));
        let models = ["a".into(), "b".into()];
        let Reply::Value(b, Some(ids)) = parse_reply(value_with_models(b"cd", &models)).unwrap()
        else {
            panic!("no model ids")
        };
        assert_eq!((&b[..], ids), (&b"cd"[..], models.to_vec()));
        assert!(matches!(parse_reply(item(b"c")).unwrap(), Reply::Item(b) if b == "c"));
        assert!(matches!(parse_reply(end()).unwrap(), Reply::End));
        let err = ServeError::unavailable("node gone").at(&"Adder".into(), "call");
        let Reply::Error(back) = parse_reply(error(&err)).unwrap() else {
            panic!("not an error")
        };
        assert_eq!(back.kind(), ErrorKind::Unavailable);
        assert_eq!(back.to_string(), err.to_string());
        for foreign in [&b""[..], b"\x09", b"\x01\xff\xff\xff", b"\x04\x05a"] {
            let err = parse_reply(Bytes::copy_from_slice(foreign)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Wire, "{foreign:?}");
        }
    }

    #[test]
    fn control_messages_round_trip() {
        let credit = Control::Credit {
            reply: "serve.c.inbox.n.1",
            items: 16,
        };
        assert_eq!(parse_control(&control(&credit)).unwrap(), credit);
        assert!(parse_control(b"\x07").is_err());
    }
}
