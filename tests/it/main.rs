//! The one integration-test binary (one link step instead of one per file).
//! Each module is named for the behaviour it proves.

mod support;

mod mock_stand_in;
mod signing_vectors;
