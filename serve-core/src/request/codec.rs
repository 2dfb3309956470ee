//! The wire format of values that cross a process boundary (cluster mode): postcard, chosen by
//! measurement (`serve-core/benches/codec.rs`; the numbers are in the benchmarks chapter of the
//! guide). Both ends are built from the same source, so the format carries no field names or type
//! tags.
//!
//! Generated code picks a type's encoder and decoder with [`Wire`], by autoref specialization:
//! `(&&Wire::<T>::NEW).__serve_encoder()` is postcard's when `T` is a serde type, else a fallback
//! that fails at run time. The fallback is never reached in a program that compiles: every
//! argument and result type of a deployment method is checked with `assert_arg`, which gives the
//! one compile error a non-serde type gets; the wire code adds none.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ErrorKind, ServeError};

/// Encodes `value`.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ServeError> {
    postcard::to_stdvec(value).map_err(|e| {
        ServeError::new(ErrorKind::Wire).with_message(format!(
            "cannot encode a `{}`: {e}",
            std::any::type_name::<T>()
        ))
    })
}

/// Decodes a `T` from all of `bytes`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServeError> {
    let malformed = |e: &dyn std::fmt::Display| {
        ServeError::new(ErrorKind::Wire).with_message(format!(
            "cannot decode a `{}` from {} bytes: {e}",
            std::any::type_name::<T>(),
            bytes.len()
        ))
    };
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(malformed(&format_args!("{} bytes left over", rest.len()))),
        Err(e) => Err(malformed(&e)),
    }
}

/// Encodes a value of a method's result or stream item type.
pub type Encoder<T> = fn(&T) -> Result<Vec<u8>, ServeError>;

/// Decodes a method's argument tuple.
pub type Decoder<T> = fn(&[u8]) -> Result<T, ServeError>;

/// How a call crosses to a replica in another process: its argument tuple's encoder and its
/// result's (or stream item's) decoder. Two function pointers, made by the generated stub and
/// used only when the picked replica is remote.
#[doc(hidden)]
pub struct CallWire<V, T> {
    /// Encodes the argument tuple.
    pub args: Encoder<V>,
    /// Decodes the result, or each item of a stream.
    pub result: Decoder<T>,
}

impl<V, T> Clone for CallWire<V, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V, T> Copy for CallWire<V, T> {}

/// Picks the encoder and decoder of `T` (see the module docs).
#[doc(hidden)]
pub struct Wire<T>(PhantomData<fn() -> T>);

impl<T> Wire<T> {
    /// The marker value.
    pub const NEW: Self = Wire(PhantomData);
}

/// `T` is a serde type: postcard.
#[doc(hidden)]
pub trait WireViaSerde {
    /// The type.
    type Value;
    /// Its encoder.
    fn __serve_encoder(&self) -> Encoder<Self::Value>;
    /// Its decoder.
    fn __serve_decoder(&self) -> Decoder<Self::Value>;
}

impl<T: Serialize + DeserializeOwned> WireViaSerde for &Wire<T> {
    type Value = T;
    fn __serve_encoder(&self) -> Encoder<T> {
        |value| encode(value)
    }
    fn __serve_decoder(&self) -> Decoder<T> {
        |bytes| decode(bytes)
    }
}

/// `T` is not a serde type: its method does not compile anyway (`assert_arg`); this keeps the wire
/// code from adding errors of its own.
#[doc(hidden)]
pub trait WireFallback {
    /// The type.
    type Value;
    /// Fails.
    fn __serve_encoder(&self) -> Encoder<Self::Value>;
    /// Fails.
    fn __serve_decoder(&self) -> Decoder<Self::Value>;
}

impl<T> WireFallback for Wire<T> {
    type Value = T;
    fn __serve_encoder(&self) -> Encoder<T> {
        |_| Err(not_serde::<T>())
    }
    fn __serve_decoder(&self) -> Decoder<T> {
        |_| Err(not_serde::<T>())
    }
}

fn not_serde<T>() -> ServeError {
    ServeError::new(ErrorKind::Wire).with_message(format!(
        "`{}` is not a serde type and cannot cross to another process",
        std::any::type_name::<T>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_malformed_bytes_are_an_error() {
        let bytes = encode(&(5i32, "Dora".to_owned())).unwrap();
        assert_eq!(decode::<(i32, String)>(&bytes).unwrap(), (5, "Dora".into()));
        let err = decode::<(i32, String)>(&bytes[..2]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Wire);
        assert!(
            err.to_string()
                .contains("cannot decode a `(i32, alloc::string::String)`"),
            "{err}"
        );
        let err = decode::<(i32,)>(&bytes).unwrap_err();
        assert!(err.to_string().contains("bytes left over"), "{err}");
    }

    #[test]
    #[allow(clippy::needless_borrow)] // the borrows pick the implementation
    fn the_wire_of_a_type_is_picked_by_whether_it_is_a_serde_type() {
        #[allow(unused_imports)]
        use super::{WireFallback as _, WireViaSerde as _};
        let encode = (&&Wire::<u32>::NEW).__serve_encoder();
        let decode = (&&Wire::<u32>::NEW).__serve_decoder();
        assert_eq!(decode(&encode(&7).unwrap()).unwrap(), 7);
        struct Opaque;
        let err = (&&Wire::<Opaque>::NEW).__serve_encoder()(&Opaque).unwrap_err();
        assert!(err.to_string().contains("is not a serde type"), "{err}");
    }
}
