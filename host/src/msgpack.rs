//! Writes MessagePack as Fluent Bit encodes chunks.

/// The record format of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Fluent Bit 1.x: `[time, body]`.
    V1,
    /// Fluent Bit 2.1+: `[[time, metadata], body]`.
    V2,
}

/// A chunk under construction: call [`Writer::event`], then write the body's map.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    /// Starts a record with an EventTime and an empty metadata map (V2); the body follows.
    pub fn event(&mut self, format: Format, secs: u32, nanos: u32) -> &mut Self {
        self.array(2);
        if format == Format::V2 {
            self.array(2);
        }
        self.event_time(secs, nanos);
        if format == Format::V2 {
            self.map(0);
        }
        self
    }

    pub fn event_time(&mut self, secs: u32, nanos: u32) -> &mut Self {
        self.buf.extend_from_slice(&[0xd7, 0x00]);
        self.buf.extend_from_slice(&secs.to_be_bytes());
        self.buf.extend_from_slice(&nanos.to_be_bytes());
        self
    }

    pub fn array(&mut self, n: u32) -> &mut Self {
        self.header(n, 0x90, 0xdc, 0xdd)
    }

    pub fn map(&mut self, n: u32) -> &mut Self {
        self.header(n, 0x80, 0xde, 0xdf)
    }

    fn header(&mut self, n: u32, fix: u8, b16: u8, b32: u8) -> &mut Self {
        if n < 16 {
            self.buf.push(fix | n as u8);
        } else if n <= 0xffff {
            self.buf.push(b16);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(b32);
            self.buf.extend_from_slice(&n.to_be_bytes());
        }
        self
    }

    pub fn str(&mut self, s: impl AsRef<[u8]>) -> &mut Self {
        let s = s.as_ref();
        let n = s.len();
        if n < 32 {
            self.buf.push(0xa0 | n as u8);
        } else if n <= 0xff {
            self.buf.extend_from_slice(&[0xd9, n as u8]);
        } else if n <= 0xffff {
            self.buf.push(0xda);
            self.buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.buf.push(0xdb);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.buf.extend_from_slice(s);
        self
    }

    pub fn uint(&mut self, v: u64) -> &mut Self {
        self.buf.push(0xcf);
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// A map of string keys to string values.
    pub fn string_map(&mut self, pairs: &[(&str, &str)]) -> &mut Self {
        self.map(pairs.len() as u32);
        for (k, v) in pairs {
            self.str(k).str(v);
        }
        self
    }

    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }
}

/// A FireLens record as the forward input and `record_modifier` make it.
pub fn firelens_record(
    w: &mut Writer,
    format: Format,
    secs: u32,
    nanos: u32,
    source: &str,
    log: &str,
) {
    w.event(format, secs, nanos).string_map(&[
        ("container_id", "3f2a9c"),
        ("container_name", "/ecs-httpd-1-httpd"),
        ("source", source),
        ("log", log),
        ("ecs_cluster", "default"),
        (
            "ecs_task_arn",
            "arn:aws:ecs:ap-northeast-1:123456789012:task/default/0123456789abcdef0123456789abcdef",
        ),
        ("ecs_task_definition", "httpd:1"),
    ]);
}
