//! `gateway admin channel ...`: channels, the stable web addresses that put
//! end users into a group's queue.

use super::{ACTOR, group_name};
use anyhow::bail;
use clap::Subcommand;
use lifeline_protocol::text;
use lifeline_store::{Store, StoreError};

/// `gateway admin channel ...`
#[derive(Debug, Subcommand)]
pub enum ChannelCmd {
    /// Add a channel: a stable address on the gateway's web page
    /// (`/c/TOKEN`) for a company's support page. Each visit downloads a
    /// support program whose end user waits in the group's queue for the
    /// next free technician of the group (`tech-console queue`,
    /// `tech-console connect --next`).
    #[command(
        after_help = "Example: gateway admin channel add printers --group default --ask-details"
    )]
    Add {
        /// The channel's name (shown to technicians with each end user).
        name: String,
        /// The group whose technicians take its end users.
        #[arg(long)]
        group: String,
        /// Ask the end user for their name and a short description of the
        /// problem on the page (both optional for them).
        #[arg(long)]
        ask_details: bool,
    },
    /// List channels and their addresses.
    #[command(after_help = "Example: gateway admin channel list")]
    List,
    /// Remove a channel: its address stops working at once. End users
    /// already waiting stay in the queue.
    #[command(after_help = "Example: gateway admin channel remove printers")]
    Remove {
        /// The channel's name.
        name: String,
    },
}

/// The address of a channel on the gateway's web page.
fn address(token: &str) -> String {
    format!("/c/{token}")
}

pub(super) async fn run(cmd: ChannelCmd, store: &Store, now: i64) -> anyhow::Result<()> {
    match cmd {
        ChannelCmd::Add {
            name,
            group,
            ask_details,
        } => {
            let name = text::check_name("the channel name", &name, 64)?.to_owned();
            let group = group_name(&group)?;
            let mut raw = [0u8; 16];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
                .map_err(|_| anyhow::anyhow!("no randomness for the channel's address"))?;
            let token = lifeline_protocol::hex::encode(&raw);
            let channel = match store
                .add_channel(&name, &group, &token, ask_details, now)
                .await
            {
                Ok(c) => c,
                Err(StoreError::NotFound(_)) => bail!(
                    "there is no group named {group:?} (`gateway admin group list` shows them)"
                ),
                Err(StoreError::Conflict(m)) => bail!("{m}"),
                Err(e) => return Err(e.into()),
            };
            store
                .audit(
                    now,
                    None,
                    ACTOR,
                    "channel added",
                    &format!(
                        "{name} into group {group}'s queue{}",
                        if ask_details {
                            ", asking name and problem"
                        } else {
                            ""
                        }
                    ),
                )
                .await?;
            println!(
                "channel {name}: end users who open https://GATEWAY{} (GATEWAY: the gateway's \
                 web address) wait in group {}'s queue",
                address(&channel.token),
                channel.group
            );
        }
        ChannelCmd::List => {
            let channels = store.channels().await?;
            if channels.is_empty() {
                println!("no channels (`gateway admin channel add NAME --group G` adds one)");
            }
            for c in channels {
                println!(
                    "{:<24} group {:<16} {:<38} {}",
                    c.name,
                    c.group,
                    address(&c.token),
                    if c.ask_details {
                        "asks name and problem"
                    } else {
                        ""
                    }
                );
            }
        }
        ChannelCmd::Remove { name } => {
            if !store.remove_channel(name.trim()).await? {
                bail!(
                    "there is no channel named {name:?} (`gateway admin channel list` shows them)"
                );
            }
            store
                .audit(now, None, ACTOR, "channel removed", name.trim())
                .await?;
            println!(
                "channel {}: removed; its address no longer works",
                name.trim()
            );
        }
    }
    Ok(())
}
