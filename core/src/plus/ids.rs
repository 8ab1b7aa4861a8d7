//! Server IDs in the state files. A server line carries its ID as a
//! comment, `server 10.0.0.5:80 weight=1 ...; # id=3`, so that every
//! reader that does not know IDs (an older module, nginx's own `include`)
//! still reads the file as before, and a restart gives each server the ID
//! it had. The file is read statement by statement as its parser reads
//! it ([`crate::state::tokens`]); a server statement's ID is the comment
//! at the end of the line its `;` is on (if no other statement ends
//! there), and the servers of a block (of the file, for a
//! `dynamic_state_file`) take their statements' IDs in order, only where
//! those statements are the servers the parser read. A comment that is not
//! exactly that gives no ID: that server gets a new one, the others keep
//! theirs.
//!
//! A file is text anyone can edit: an ID above [`MAX_ID`] is ignored, and
//! of servers given the same ID within a block only the first keeps it;
//! those servers get new IDs, and [`problems`] says why (the module logs
//! it at start).

use std::collections::{HashMap, HashSet};

use crate::address::Address;
use crate::peer::ServerSpec;
use crate::state::{parse_peer_address, tokens, Token};

/// What precedes the ID on a server line.
pub const MARK: &str = "# id=";

/// The highest server ID: the module keeps an ID in 32 bits of the peer's
/// record ([`crate::plus::stats::word`]); JSON clients read it exactly.
pub const MAX_ID: u64 = u32::MAX as u64 - 1;

/// A server statement of a file: where it ends, its address, and the ID
/// its line's comment gives it (None: no comment, a line of several
/// statements, or an ID not given: see [`Line::problem`]).
struct Line {
    line: usize,
    address: Address,
    id: Option<u64>,
    /// Why the comment's ID was not given.
    problem: Option<Problem>,
}

#[derive(Clone, Copy)]
enum Problem {
    AboveMax,
    GivenBefore,
}

/// The server statements of a file, by block (the lower-cased name of its
/// `upstream NAME {`, None outside blocks), each block's in order: read
/// once per file. Each statement counts where it ends, the line its ID
/// comment is on; statements without an ID are listed too (a block's
/// servers take their IDs by position).
pub struct ServerLines {
    blocks: HashMap<Option<String>, Vec<Line>>,
}

impl ServerLines {
    pub fn new(text: &str) -> ServerLines {
        let mut blocks: HashMap<Option<String>, Vec<Line>> = HashMap::new();
        if !text.contains(MARK) {
            return ServerLines { blocks }; // no ID to give
        }
        // Each server statement (its block, address and last line), and
        // how many statements end on each line.
        let mut servers: Vec<(Option<String>, Address, usize)> = Vec::new();
        let mut ending: HashMap<usize, usize> = HashMap::new();
        let mut block: Option<String> = None;
        let read = tokens(text, true, |token| {
            match token {
                // `upstream NAME {`
                Token::Open { words, .. } => block = words.get(1).map(|name| name.to_ascii_lowercase()),
                Token::Close { .. } => block = None,
                Token::Statement { end_line, words, .. } => {
                    *ending.entry(end_line).or_default() += 1;
                    if let [directive, address, ..] = words.as_slice() {
                        if let (true, Ok(address)) = (directive == "server", parse_peer_address(address)) {
                            servers.push((block.clone(), address, end_line));
                        }
                    }
                }
            }
            Ok(())
        });
        if read.is_err() {
            return ServerLines { blocks }; // a file the parsers refuse too
        }
        let marks: Vec<Option<u64>> = text.lines().map(id_comment).collect();
        let mut given: HashMap<Option<String>, HashSet<u64>> = HashMap::new();
        for (block, address, line) in servers {
            let alone = ending.get(&line) == Some(&1);
            let id = marks.get(line - 1).copied().flatten().filter(|_| alone);
            let problem = match id {
                Some(id) if id > MAX_ID => Some(Problem::AboveMax),
                Some(id) if !given.entry(block.clone()).or_default().insert(id) => Some(Problem::GivenBefore),
                _ => None,
            };
            let id = id.filter(|_| problem.is_none());
            blocks.entry(block).or_default().push(Line { line, address, id, problem });
        }
        ServerLines { blocks }
    }

    /// Gives `servers` (of the block `upstream`, None for a
    /// `dynamic_state_file`), in the file's order, the IDs of their
    /// statements (see the module comment for the IDs it does not give).
    /// Only where the statements read here are those servers, in the same
    /// order: where the block's own parser read them otherwise (a
    /// hand-edited file it reads with other rules), none gets an ID, rather
    /// than one of another server's.
    pub fn attach(&self, upstream: Option<&str>, servers: &mut [ServerSpec]) {
        let key = upstream.map(str::to_ascii_lowercase);
        let lines = self.blocks.get(&key).map_or(&[][..], Vec::as_slice);
        let same =
            lines.len() == servers.len() && lines.iter().zip(servers.iter()).all(|(l, s)| l.address == s.address);
        for (i, server) in servers.iter_mut().enumerate() {
            server.id = if same { lines[i].id } else { None };
        }
    }

    /// Why IDs were not given, one line each (empty: all were), in the
    /// file's order.
    pub fn problems(&self) -> Vec<String> {
        let mut all: Vec<&Line> = self.blocks.values().flatten().filter(|l| l.problem.is_some()).collect();
        all.sort_by_key(|l| l.line);
        all.iter()
            .map(|l| {
                let why = match l.problem {
                    Some(Problem::AboveMax) => format!("is above {MAX_ID}"),
                    _ => "is given to an earlier server too".to_string(),
                };
                format!("line {}: the ID of server {} {why}: it gets a new one", l.line, l.address)
            })
            .collect()
    }
}

/// The ID a line's comment gives (`...; # id=N` at its end), if any
/// (out-of-range values as `u64::MAX`).
fn id_comment(line: &str) -> Option<u64> {
    let (_, id) = line.trim_end().rsplit_once(MARK)?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.parse::<u64>().unwrap_or(u64::MAX))
}

/// Why IDs of `text` were not given, one line each (empty: all were).
pub fn problems(text: &str) -> Vec<String> {
    ServerLines::new(text).problems()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{parse_dyups_conf, parse_server_state, render_dyups_conf, render_server_state, DyupsEntry};

    /// The IDs a `dynamic_state_file` gives its servers.
    fn state_ids(text: &str) -> Vec<Option<u64>> {
        parse_server_state(text, false).unwrap().unwrap().iter().map(|s| s.id).collect()
    }

    /// The IDs a `dyups_upstream_conf` gives each block's servers.
    fn dyups_ids(text: &str) -> Vec<Vec<Option<u64>>> {
        let ids = |entry: DyupsEntry| match entry {
            DyupsEntry::Upstream(_, spec) => spec.servers.iter().map(|s| s.id).collect(),
            DyupsEntry::Deleted(_) => Vec::new(),
        };
        parse_dyups_conf(text).unwrap().into_iter().map(ids).collect()
    }

    fn spec(addr: &str, id: Option<u64>) -> ServerSpec {
        let mut s = ServerSpec::new(Address::parse(addr).unwrap());
        s.id = id;
        s
    }

    #[test]
    fn state_file_keeps_ids_as_comments() {
        let servers = vec![spec("127.0.0.1:1", Some(7)), spec("127.0.0.1:2", None), spec("unix:/tmp/a.sock", Some(0))];
        let text = render_server_state(&servers);
        assert!(text.contains("server 127.0.0.1:1 weight=1 max_fails=1 fail_timeout=10; # id=7\n"), "{text}");
        assert!(text.contains("server 127.0.0.1:2 weight=1 max_fails=1 fail_timeout=10;\n"), "{text}");
        assert_eq!(parse_server_state(&text, false).unwrap(), Some(servers));
        assert!(problems(&text).is_empty());
    }

    #[test]
    fn readers_without_ids_read_the_same_servers() {
        let text = render_server_state(&[spec("127.0.0.1:1", Some(7))]);
        let without = text.replace(" # id=7", "");
        let plain: Vec<ServerSpec> = parse_server_state(&text, false)
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|s| ServerSpec { id: None, ..s })
            .collect();
        assert_eq!(Some(plain), parse_server_state(&without, false).unwrap());
    }

    #[test]
    fn a_server_given_twice_keeps_both_ids() {
        let text = "server 127.0.0.1:1; # id=0\nserver 127.0.0.1:1; # id=1\nserver 127.0.0.1:2; # id=2\n\
                    server 127.0.0.1:2 backup; # id=3\n";
        let ids = state_ids(text);
        assert_eq!(ids, [Some(0), Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn a_line_without_id_keeps_its_place_among_lines_of_its_address() {
        // Hand-edited (review 13 F3): each line without an ID used to take
        // the ID of the next line of its address, a primary a backup's.
        let text = "server 127.0.0.1:1 weight=5;\nserver 127.0.0.1:1; # id=4\n\
                    server 127.0.0.1:2 weight=2;\nserver 127.0.0.1:2 backup; # id=7\n\
                    server 127.0.0.1:3; server 127.0.0.1:3;\nserver 127.0.0.1:3; # id=9\n";
        let ids = state_ids(text);
        assert_eq!(ids, [None, Some(4), None, Some(7), None, None, Some(9)]);
        assert!(problems(text).is_empty());
    }

    #[test]
    fn a_statement_over_two_lines_or_after_the_block_brace_keeps_its_place() {
        // Review 14 F3: each took the next same-address line's ID.
        assert_eq!(state_ids("server 127.0.0.1:1\n    weight=5;\nserver 127.0.0.1:1; # id=4\n"), [None, Some(4)]);
        let text = "upstream u { server 127.0.0.1:1 weight=5;\nserver 127.0.0.1:1; # id=3\n}\n\
                    upstream v {\nserver 127.0.0.1:9; }\nupstream w {\nserver 127.0.0.1:9; # id=3\n}\n";
        let ids = dyups_ids(text);
        assert_eq!(ids, [vec![None, Some(3)], vec![None], vec![Some(3)]]);
    }

    #[test]
    fn statements_are_read_as_nginx_reads_them() {
        // Review 15: a comment inside a statement, a statement continued
        // after another on its line, `{` on the line after the name.
        assert_eq!(
            state_ids("server 127.0.0.1:1 # primary\n    weight=5;\nserver 127.0.0.1:1; # id=4\n"),
            [None, Some(4)]
        );
        assert_eq!(
            state_ids("server 127.0.0.1:2; server 127.0.0.1:1\n    weight=5;\nserver 127.0.0.1:1; # id=4\n"),
            [None, None, Some(4)]
        );
        let text = "upstream a {\nserver 127.0.0.1:1; # id=3\n}\nupstream\tb\n{\n    server 127.0.0.1:1; # id=3\n    \
                    server 127.0.0.1:1; # id=4\n}\n";
        let ids = dyups_ids(text);
        assert_eq!(ids, [vec![Some(3)], vec![Some(3), Some(4)]]);
    }

    #[test]
    fn where_the_block_parser_reads_other_servers_none_gets_an_id() {
        // Review 16: the dyups block parser ends a word at a `#` inside it
        // (`2#`), the ID scan does not: the second server's ID went to the
        // first. Now neither gets one (new IDs), rather than a wrong one.
        let text = "upstream a {\n    server 127.0.0.1:2#; server 127.0.0.1:1\n        weight=9; # id=9\n    \
                    server 127.0.0.1:1 weight=1; # id=1\n}\n";
        if let Ok(entries) = parse_dyups_conf(text) {
            for entry in entries {
                if let DyupsEntry::Upstream(_, spec) = entry {
                    for server in &spec.servers {
                        assert!(server.id.is_none() || server.id == Some(server.weight), "{:?}", spec.servers);
                    }
                }
            }
        }
    }

    #[test]
    fn odd_comments_give_no_id_and_the_first_of_a_duplicate_keeps_it() {
        let text = "server 127.0.0.1:1; # id=x\nserver 127.0.0.1:2; # id=3\nserver 127.0.0.1:3; # id=3\nserver 127.0.0.1:4; # id=-1\n";
        let ids = state_ids(text);
        assert_eq!(ids, vec![None, Some(3), None, None]);
        assert_eq!(
            problems(text),
            vec!["line 3: the ID of server 127.0.0.1:3 is given to an earlier server too: it gets a new one"]
        );
        let text = "server 127.0.0.1:1;   # id=12  \n";
        assert_eq!(parse_server_state(text, false).unwrap().unwrap()[0].id, Some(12));
    }

    #[test]
    fn ids_out_of_range_are_ignored() {
        let text = "server 127.0.0.1:1; # id=18446744073709551614\nserver 127.0.0.1:2; # id=99999999999999999999999\n\
                    server 127.0.0.1:3; # id=4294967294\nserver 127.0.0.1:4; # id=4294967295\nserver 127.0.0.1:5;\n";
        let ids = state_ids(text);
        assert_eq!(ids, vec![None, None, Some(MAX_ID), None, None]);
        assert_eq!(
            problems(text),
            vec![
                "line 1: the ID of server 127.0.0.1:1 is above 4294967294: it gets a new one",
                "line 2: the ID of server 127.0.0.1:2 is above 4294967294: it gets a new one",
                "line 4: the ID of server 127.0.0.1:4 is above 4294967294: it gets a new one",
            ]
        );
    }

    #[test]
    fn dyups_file_keeps_ids_per_upstream() {
        let a = crate::dyups::parse_body("server 127.0.0.1:1; server 127.0.0.1:2;").unwrap();
        let mut a_ids = a.clone();
        a_ids.servers[0].id = Some(5);
        a_ids.servers[1].id = Some(1);
        let mut b = a.clone();
        b.servers[0].id = Some(5);
        let entries = vec![DyupsEntry::Upstream("a".into(), a_ids), DyupsEntry::Upstream("B".into(), b)];
        let text = render_dyups_conf(&entries);
        assert_eq!(parse_dyups_conf(&text).unwrap(), entries, "{text}");
        assert!(problems(&text).is_empty(), "the same ID in two blocks is fine");
    }
}
