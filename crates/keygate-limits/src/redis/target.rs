//! Where Redis is: one server (`redis://…`, `rediss://…`) or a Redis Cluster given by its seed
//! nodes (`redis+cluster://host1:port1,host2:port2`, `rediss+cluster://…` for TLS; user and
//! password, when given, apply to every seed). The limiter's keys for one decision share the
//! hash tag `{workspace}`, so each script runs on one shard; the invalidation channel is
//! classic Pub/Sub through one seed that every node picks the same way (see
//! [`RedisTarget::pubsub_client`]).

use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

/// A parsed `--redis-url`.
#[derive(Clone)]
pub enum RedisTarget {
    Single(::redis::Client),
    Cluster {
        client: ClusterClient,
        /// Each seed as a plain URL, for Pub/Sub and for listing the cluster's nodes.
        seeds: Vec<String>,
    },
}

impl std::fmt::Debug for RedisTarget {
    // Never prints a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTarget::Single(_) => f.write_str("RedisTarget::Single"),
            RedisTarget::Cluster { seeds, .. } => {
                write!(f, "RedisTarget::Cluster({} seeds)", seeds.len())
            }
        }
    }
}

impl RedisTarget {
    /// Reads a URL; only its form is checked, nothing is connected.
    pub fn parse(url: &str) -> Result<RedisTarget, RedisError> {
        let cluster = ["redis+cluster://", "rediss+cluster://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme).map(|rest| (*scheme, rest)));
        let Some((scheme, rest)) = cluster else {
            return Ok(RedisTarget::Single(::redis::Client::open(url)?));
        };
        let plain = scheme.replace("+cluster", "");
        let (userinfo, hosts) = match rest.rsplit_once('@') {
            Some((userinfo, hosts)) => (format!("{userinfo}@"), hosts),
            None => (String::new(), rest),
        };
        let hosts = hosts.trim_end_matches('/');
        let seeds: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|host| format!("{plain}{userinfo}{host}"))
            .collect();
        if seeds.is_empty() || hosts.contains('/') {
            return Err(RedisError::from((
                ::redis::ErrorKind::InvalidClientConfig,
                "a Redis Cluster URL lists its seeds as redis+cluster://host:port,host:port",
            )));
        }
        let client = ClusterClient::new(seeds.clone())?;
        Ok(RedisTarget::Cluster { client, seeds })
    }

    /// A client for one server: the server itself, or for a cluster the seed that sorts
    /// first (for Pub/Sub). Every node must publish and subscribe through the *same* server:
    /// the invalidation lease relies on one server ordering all messages, which a cluster's
    /// relaying between its nodes does not do. Sorting makes nodes that list the same seeds
    /// in another order still agree; give every node the same seed list.
    pub fn pubsub_client(&self) -> Result<::redis::Client, RedisError> {
        match self {
            RedisTarget::Single(client) => Ok(client.clone()),
            RedisTarget::Cluster { seeds, .. } => {
                let first = seeds.iter().min().ok_or_else(|| {
                    RedisError::from((::redis::ErrorKind::InvalidClientConfig, "no seed"))
                })?;
                ::redis::Client::open(first.as_str())
            }
        }
    }

    /// Connects, bounding the connection and each answer by `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<Conn, RedisError> {
        match self {
            RedisTarget::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    .set_number_of_retries(1)
                    .set_max_delay(100);
                Ok(Conn::Single(
                    ConnectionManager::new_with_config(client.clone(), config).await?,
                ))
            }
            RedisTarget::Cluster { seeds, .. } => {
                let client = ::redis::cluster::ClusterClientBuilder::new(seeds.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()?;
                Ok(Conn::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

/// A connection to one server or to a cluster; both reconnect by themselves.
#[derive(Clone)]
// Cloned for every decision: boxing the larger variant would allocate each time.
#[allow(clippy::large_enum_variant)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// The masters of a cluster (one `None` for a single server), for commands that walk the
    /// keyspace (`SCAN`), which a cluster answers per node.
    pub async fn masters(&mut self) -> Result<Vec<Option<(String, u16)>>, RedisError> {
        let Conn::Cluster(conn) = self else {
            return Ok(vec![None]);
        };
        let nodes: String = ::redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(conn)
            .await?;
        Ok(nodes
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let flags = fields.get(2)?;
                if !flags.contains("master") || flags.contains("fail") {
                    return None;
                }
                let address = fields.get(1)?.split('@').next()?;
                let (host, port) = address.rsplit_once(':')?;
                Some(Some((host.to_owned(), port.parse().ok()?)))
            })
            .collect())
    }

    /// Runs `cmd` on the given node of a cluster (`None`: wherever the connection goes).
    pub async fn on_node<T: ::redis::FromRedisValue>(
        &mut self,
        node: &Option<(String, u16)>,
        cmd: &Cmd,
    ) -> Result<T, RedisError> {
        match (self, node) {
            (Conn::Cluster(conn), Some((host, port))) => {
                use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                let value = conn
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        }),
                    )
                    .await?;
                ::redis::from_redis_value(&value)
            }
            (conn, _) => cmd.query_async(conn).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_one_server_or_a_cluster() {
        assert!(matches!(
            RedisTarget::parse("redis://127.0.0.1:6379"),
            Ok(RedisTarget::Single(_))
        ));
        match RedisTarget::parse("redis+cluster://:pw@127.0.0.1:7001,127.0.0.1:7002/") {
            Ok(RedisTarget::Cluster { seeds, .. }) => assert_eq!(
                seeds,
                ["redis://:pw@127.0.0.1:7001", "redis://:pw@127.0.0.1:7002"]
            ),
            other => panic!("{other:?}"),
        }
        assert!(RedisTarget::parse("redis+cluster://").is_err());
        assert!(RedisTarget::parse("redis+cluster://h:1/2").is_err());
        assert!(RedisTarget::parse("nonsense").is_err());
    }
}
