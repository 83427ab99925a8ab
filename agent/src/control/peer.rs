//! Who is on the other end of the socket, and what they may do.
//!
//! The kernel tells us the peer's uid, gid and pid (SO_PEERCRED). Supplementary groups come from
//! `/proc/<pid>/status` (the peer's real group list, whatever NSS source it came from); user and
//! group names in the config are resolved through `/etc/passwd` and `/etc/group` at load time.
//!
//! The rules: root and the agent's own user are admins. Admins are also the users in
//! `admin_users` and members of `admin_groups` (default: the `arbosync` group). Readers are the
//! users in `read_users` and members of `read_groups`; when both lists are empty, any peer the
//! socket's file mode (0660) let in may read.

use std::collections::HashSet;

use arbosync_shared::Role;

use crate::config::{AgentSettings, Principal};

/// The group that may administer the agent when the config names none.
pub const DEFAULT_ADMIN_GROUP: &str = "arbosync";

/// The peer's identity as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub groups: HashSet<u32>,
}

impl Peer {
    pub fn from_stream(stream: &tokio::net::UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        let mut groups = cred
            .pid()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .map(|s| supplementary_groups(&s))
            .unwrap_or_default();
        groups.insert(cred.gid());
        Ok(Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            groups,
        })
    }
}

/// The `Groups:` line of a `/proc/<pid>/status` file.
pub fn supplementary_groups(status: &str) -> HashSet<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Resolved access lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    pub own_uid: u32,
    pub admin_uids: HashSet<u32>,
    pub admin_gids: HashSet<u32>,
    pub read_uids: HashSet<u32>,
    pub read_gids: HashSet<u32>,
    /// No read lists configured: whoever can open the socket may read.
    pub open_read: bool,
}

impl AccessPolicy {
    /// Resolves the config's names through `/etc/passwd` and `/etc/group`. Names that do not
    /// resolve are returned so the caller can warn about them.
    pub fn from_settings(agent: &AgentSettings, own_uid: u32) -> (AccessPolicy, Vec<String>) {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        AccessPolicy::resolve(agent, own_uid, &passwd, &group)
    }

    pub fn resolve(
        agent: &AgentSettings,
        own_uid: u32,
        passwd: &str,
        group: &str,
    ) -> (AccessPolicy, Vec<String>) {
        let mut unresolved = Vec::new();
        let mut users = |list: &[Principal]| -> HashSet<u32> {
            list.iter()
                .filter_map(|p| match p {
                    Principal::Id(id) => Some(*id),
                    Principal::Name(n) => {
                        let id = lookup(passwd, n);
                        if id.is_none() {
                            unresolved.push(format!("user `{n}`"));
                        }
                        id
                    }
                })
                .collect()
        };
        let admin_uids = users(&agent.admin_users);
        let read_uids = users(&agent.read_users);
        let mut groups = |list: &[Principal], default: Option<&str>| -> HashSet<u32> {
            if list.is_empty() {
                // The default group may legitimately not exist (a development machine).
                return default.and_then(|n| lookup(group, n)).into_iter().collect();
            }
            list.iter()
                .filter_map(|p| match p {
                    Principal::Id(id) => Some(*id),
                    Principal::Name(n) => {
                        let id = lookup(group, n);
                        if id.is_none() {
                            unresolved.push(format!("group `{n}`"));
                        }
                        id
                    }
                })
                .collect()
        };
        let admin_default = agent.admin_users.is_empty().then_some(DEFAULT_ADMIN_GROUP);
        let admin_gids = groups(&agent.admin_groups, admin_default);
        let read_gids = groups(&agent.read_groups, None);
        let open_read = agent.read_users.is_empty() && agent.read_groups.is_empty();
        (
            AccessPolicy {
                own_uid,
                admin_uids,
                admin_gids,
                read_uids,
                read_gids,
                open_read,
            },
            unresolved,
        )
    }

    /// The peer's role, or `None` when it may not use the socket at all.
    pub fn role(&self, peer: &Peer) -> Option<Role> {
        if peer.uid == 0
            || peer.uid == self.own_uid
            || self.admin_uids.contains(&peer.uid)
            || peer.groups.iter().any(|g| self.admin_gids.contains(g))
        {
            return Some(Role::Admin);
        }
        if self.open_read
            || self.read_uids.contains(&peer.uid)
            || peer.groups.iter().any(|g| self.read_gids.contains(g))
        {
            return Some(Role::ReadOnly);
        }
        None
    }
}

/// The id of `name` in a passwd- or group-format file (`name:x:id:...`).
fn lookup(file: &str, name: &str) -> Option<u32> {
    file.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\narbosync:x:990:alice\nops:x:991:\nnogroup:x:65534:\n";

    fn settings(toml_agent: &str) -> AgentSettings {
        let text = format!(
            "[agent]\nstate_dir = \"/tmp/x\"\n{toml_agent}\n[database]\nurl = \"sqlite:///tmp/x/db.sqlite\"\n"
        );
        crate::config::Config::from_str(&text, "/tmp/agent.toml")
            .expect("valid test config")
            .agent
    }

    fn peer(uid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid: groups.first().copied().unwrap_or(uid),
            groups: groups.iter().copied().collect(),
        }
    }

    #[test]
    fn defaults_make_root_self_and_the_arbosync_group_admin() {
        let (p, unresolved) = AccessPolicy::resolve(&settings(""), 4242, PASSWD, GROUP);
        assert!(unresolved.is_empty());
        assert_eq!(p.role(&peer(0, &[0])), Some(Role::Admin));
        assert_eq!(p.role(&peer(4242, &[4242])), Some(Role::Admin));
        assert_eq!(p.role(&peer(1000, &[1000, 990])), Some(Role::Admin));
        // Anyone else the file mode let in may read.
        assert_eq!(p.role(&peer(65534, &[65534])), Some(Role::ReadOnly));
    }

    #[test]
    fn configured_lists_decide_read_and_admin() {
        let (p, unresolved) = AccessPolicy::resolve(
            &settings(
                "admin_groups = [\"ops\"]\nread_users = [\"nobody\"]\nread_groups = [\"missing\"]",
            ),
            4242,
            PASSWD,
            GROUP,
        );
        assert_eq!(unresolved, vec!["group `missing`".to_string()]);
        assert_eq!(
            p.role(&peer(1000, &[1000, 990])),
            None,
            "arbosync is no longer admin"
        );
        assert_eq!(p.role(&peer(1001, &[991])), Some(Role::Admin));
        assert_eq!(p.role(&peer(65534, &[65534])), Some(Role::ReadOnly));
        assert_eq!(p.role(&peer(1002, &[1002])), None);
    }

    #[test]
    fn numeric_ids_need_no_lookup() {
        let (p, _) = AccessPolicy::resolve(
            &settings("admin_users = [1234]\nread_groups = [777]"),
            4242,
            "",
            "",
        );
        assert_eq!(p.role(&peer(1234, &[1])), Some(Role::Admin));
        assert_eq!(p.role(&peer(5, &[777])), Some(Role::ReadOnly));
        assert_eq!(p.role(&peer(5, &[778])), None);
    }

    #[test]
    fn proc_status_groups_are_parsed() {
        let status = "Name:\tx\nUid:\t1\t1\t1\t1\nGroups:\t4 24 990 \nNgid:\t0\n";
        assert_eq!(supplementary_groups(status), HashSet::from([4, 24, 990]));
        assert!(supplementary_groups("Name: x\n").is_empty());
    }
}
