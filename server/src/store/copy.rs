//! Rows in Postgres's binary `COPY` format: the cheapest way to write many new rows (no SQL
//! text to parse, no text-to-type conversion on the server, one multi-row insert per page).
//! See <https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>.

use app::domain::units::Timestamp;

/// Milliseconds from the Unix epoch to Postgres's (2000-01-01 UTC).
const POSTGRES_EPOCH_MS: i64 = 946_684_800_000;

/// A `COPY … FROM STDIN WITH (FORMAT binary)` payload, built row by row. Each row writes one
/// field per column of the statement, in its order.
pub struct BinaryRows {
    buf: Vec<u8>,
    columns: i16,
}

impl BinaryRows {
    pub fn new(columns: i16) -> BinaryRows {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0i32.to_be_bytes()); // no header extension
        BinaryRows { buf, columns }
    }

    /// Starts a row.
    pub fn row(&mut self) -> &mut BinaryRows {
        self.buf.extend_from_slice(&self.columns.to_be_bytes());
        self
    }

    fn field(&mut self, bytes: &[u8]) -> &mut BinaryRows {
        self.buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
        self
    }

    pub fn int8(&mut self, v: i64) -> &mut BinaryRows {
        self.field(&v.to_be_bytes())
    }

    pub fn int4(&mut self, v: i32) -> &mut BinaryRows {
        self.field(&v.to_be_bytes())
    }

    pub fn float8(&mut self, v: f64) -> &mut BinaryRows {
        self.field(&v.to_be_bytes())
    }

    pub fn bool(&mut self, v: bool) -> &mut BinaryRows {
        self.field(&[u8::from(v)])
    }

    /// `text` (the connection's encoding is UTF-8) or `bytea`.
    pub fn bytes(&mut self, v: &[u8]) -> &mut BinaryRows {
        self.field(v)
    }

    pub fn text(&mut self, v: &str) -> &mut BinaryRows {
        self.field(v.as_bytes())
    }

    pub fn optional_text(&mut self, v: Option<&str>) -> &mut BinaryRows {
        match v {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    pub fn optional_int8(&mut self, v: Option<i64>) -> &mut BinaryRows {
        match v {
            Some(v) => self.int8(v),
            None => self.null(),
        }
    }

    fn null(&mut self) -> &mut BinaryRows {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    /// `timestamptz`: microseconds since the Postgres epoch.
    pub fn timestamp(&mut self, t: Timestamp) -> &mut BinaryRows {
        self.int8((t.millis() - POSTGRES_EPOCH_MS) * 1000)
    }

    /// The payload so far, leaving the buffer empty for the rows after it (a `COPY`'s data may
    /// be sent in pieces that split rows anywhere).
    pub fn take(&mut self) -> Vec<u8> {
        let capacity = self.buf.capacity();
        std::mem::replace(&mut self.buf, Vec::with_capacity(capacity))
    }

    /// The payload, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

/// Writes `rows` with `statement` (a `COPY … FROM STDIN WITH (FORMAT binary)`); returns how
/// many rows Postgres stored.
pub async fn copy_in(conn: &mut sqlx::PgConnection, statement: &str, rows: BinaryRows) -> sqlx::Result<u64> {
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(rows.finish()).await?;
    copy.finish().await
}
