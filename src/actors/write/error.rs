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
    /// What a publisher is told: what failed, never where (no bucket endpoint, object key or
    /// control-plane URL; those are in the log line that carries the same reference).
    pub fn public(&self) -> String {
        match self {
            Self::NothingToWrite => "nothing to write".into(),
            Self::SequencerUnavailable => "sequence client unavailable".into(),
            Self::Mailbox(_) => "write path unavailable".into(),
            Self::NoObjectIds => "control plane handed out no object ids".into(),
            Self::ControlPlane(e) => control_plane_public(e).into(),
            Self::NoObjectId(cause) => format!("no object id: {}", cause.public()),
            Self::Build(_) => "building the object failed".into(),
            Self::Upload(_) => "object upload failed".into(),
            Self::CommitShape => "control plane answered a commit with a mismatched shape".into(),
            Self::Commit(cause) => format!("commit failed: {}", cause.public()),
        }
    }

    /// No object id, because of `cause`.
    pub fn no_object_id(cause: WriteError) -> Self {
        Self::NoObjectId(Box::new(cause))
    }

    /// The commit failed, because of `cause`.
    pub fn commit(cause: WriteError) -> Self {
        Self::Commit(Box::new(cause))
    }
}

fn control_plane_public(e: &CpError) -> &'static str {
    match e {
        CpError::Unauthorized(_) => "control plane refused the credentials",
        CpError::Http { .. } => "control plane answered with an error",
        CpError::Timeout => "control plane request timed out",
        CpError::Connect(_) => "cannot connect to the control plane",
        CpError::Send(_) | CpError::Body(_) => "control plane request failed",
        CpError::Decode(_) | CpError::Encode(_) => "control plane exchange malformed",
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

    /// Publishers never see where things are: no endpoint, object key or URL in `public`.
    #[test]
    fn public_texts_name_no_places() {
        let upload = WriteError::Upload(crate::actors::write::uploader::UploadError::Permanent(
            "PUT https://s3.example.com/bucket/g/objects/7.obj: 403".into(),
        ));
        assert_eq!(upload.public(), "object upload failed");
        assert!(
            upload.to_string().contains("s3.example.com"),
            "the log keeps it"
        );
        let connect = WriteError::commit(WriteError::ControlPlane(CpError::Connect(
            "http://10.0.0.5:8080/v1/commit: refused".into(),
        )));
        assert_eq!(
            connect.public(),
            "commit failed: cannot connect to the control plane"
        );
        let http = WriteError::no_object_id(WriteError::ControlPlane(CpError::Http {
            status: 500,
            message: "at /var/lib/cp".into(),
        }));
        assert!(!http.public().contains("/var/lib"), "{}", http.public());
    }
}
