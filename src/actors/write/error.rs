//! Why a window's object was not written or committed: the one error type of the write path
//! (flusher -> uploader -> sequence client and its supervisor).
//!
//! Owns the causes and their texts (publishers read them in the JetStream error of their
//! PubAck, so they stay as they were when these were strings). Does not own how publishers
//! are answered (`sequence_client::fail_publishers`) or retries (the uploader's, the commit's).

use crate::control_plane::client::CpError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// A seal with no publishes; it still travels to the sequencer to keep seal order.
    #[error("nothing to write")]
    NothingToWrite,
    #[error("sequence client unavailable")]
    SequencerUnavailable,
    /// An actor on the write path was gone when a message was sent to it.
    #[error("{0}")]
    Mailbox(actix::MailboxError),
    #[error("control plane handed out no object ids")]
    NoObjectIds,
    #[error(transparent)]
    ControlPlane(#[from] CpError),
    #[error("no object id: {0}")]
    NoObjectId(Box<WriteError>),
    #[error("building the object: {0}")]
    Build(#[from] crate::format::FormatError),
    #[error("object upload failed: {0}")]
    Upload(#[from] crate::actors::write::uploader::UploadError),
    #[error("control plane answered a commit with a mismatched shape")]
    CommitShape,
    #[error("commit failed: {0}")]
    Commit(Box<WriteError>),
}

impl WriteError {
    /// No object id, because of `cause`.
    pub fn no_object_id(cause: WriteError) -> Self {
        Self::NoObjectId(Box::new(cause))
    }

    /// The commit failed, because of `cause`.
    pub fn commit(cause: WriteError) -> Self {
        Self::Commit(Box::new(cause))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_what_publishers_were_told_before() {
        assert_eq!(
            WriteError::commit(WriteError::SequencerUnavailable).to_string(),
            "commit failed: sequence client unavailable"
        );
        assert_eq!(
            WriteError::no_object_id(WriteError::NoObjectIds).to_string(),
            "no object id: control plane handed out no object ids"
        );
        assert_eq!(
            WriteError::commit(WriteError::ControlPlane(CpError::Timeout)).to_string(),
            "commit failed: control plane request timed out"
        );
        assert_eq!(
            WriteError::CommitShape.to_string(),
            "control plane answered a commit with a mismatched shape"
        );
    }
}
