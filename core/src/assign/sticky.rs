use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::index::{Indexed, NONE};
use super::{Assignor, GroupAssignment, GroupSubscription, RebalanceProtocol};

/// Kafka's `StickyAssignor` (KIP-54), eager: as balanced as the
/// subscriptions allow, and among balanced assignments the one that moves
/// the fewest currently owned partitions.
///
/// With equal subscriptions every member ends with ⌊P/N⌋ or ⌈P/N⌉
/// partitions and each member keeps as many of its partitions as that
/// allows. With unequal subscriptions the result is balanced in Kafka's
/// sense: no partition could move to another subscriber of its topic that
/// has two or more fewer partitions than its owner.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sticky;

impl Assignor for Sticky {
    fn name(&self) -> &str {
        "sticky"
    }

    fn assign(&self, group: &GroupSubscription) -> GroupAssignment {
        let ix = Indexed::new(group);
        let owner = sticky_owners(&ix, ix.current_owners());
        ix.to_assignment(&owner)
    }
}

/// Kafka's `CooperativeStickyAssignor` (KIP-429): the sticky assignment, but
/// a partition whose current owner would change is given to nobody in this
/// round. Its owner sees it revoked, rejoins, and the follow-up rebalance
/// assigns it: no partition is ever owned by two members at once.
///
/// Contested claims (two current members) and stale claims (an older
/// generation) are not current ownership, so they are never withheld.
///
/// With equal subscriptions the follow-up round hands every withheld
/// partition to its planned owner and moves nothing else. With unequal
/// subscriptions, balance in Kafka's sense (no improving single move) has
/// several fixpoints and which one is reached depends on the starting
/// ownership, as in Kafka's general sticky assignor; a follow-up round can
/// therefore find a better balance and revoke more. Rounds still converge,
/// and no round ever hands a partition directly from one owner to another.
/// Reaching the best balance in one round would need multi-hop move chains
/// (a min-cost flow); that is not done here.
#[derive(Clone, Copy, Debug, Default)]
pub struct CooperativeSticky;

impl Assignor for CooperativeSticky {
    fn name(&self) -> &str {
        "cooperative-sticky"
    }

    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Cooperative
    }

    fn assign(&self, group: &GroupSubscription) -> GroupAssignment {
        let ix = Indexed::new(group);
        let current = ix.current_owners();
        let mut owner = sticky_owners(&ix, current.clone());
        for (next, now) in owner.iter_mut().zip(&current) {
            if *now != NONE && *next != *now {
                *next = NONE;
            }
        }
        ix.to_assignment(&owner)
    }
}

/// The sticky assignment, starting from the current owners.
fn sticky_owners(ix: &Indexed<'_>, owner: Vec<u32>) -> Vec<u32> {
    if ix.members.is_empty() || ix.total_partitions() == 0 {
        return owner;
    }
    if ix.uniform() {
        constrained(ix, owner)
    } else {
        general(ix, owner)
    }
}

/// Equal subscriptions: quotas are known up front. Each member may hold
/// `min = P / N`, and `P % N` members may hold one more. A member keeps
/// `min(owned, quota)` of its partitions, the extra slots going to members
/// that own more than `min` (each such slot saves exactly one move, so any
/// choice among them is optimal; member order decides). Then the released
/// and unowned partitions fill members up to their quotas.
///
/// Kept partitions total `Σ min(owned_i, min) + min(#{owned_i > min}, P % N)`,
/// the most any balanced assignment can keep.
fn constrained(ix: &Indexed<'_>, mut owner: Vec<u32>) -> Vec<u32> {
    let n = ix.members.len() as u32;
    let total = ix.total_partitions();
    let min_quota = total / n;
    let mut extra_left = total % n;

    let mut owned: Vec<Vec<u32>> = vec![Vec::new(); n as usize];
    for (g, &o) in owner.iter().enumerate() {
        if o != NONE {
            owned[o as usize].push(g as u32);
        }
    }
    let mut count = vec![0u32; n as usize];
    for (m, list) in owned.iter().enumerate() {
        let have = list.len() as u32;
        let quota = if have > min_quota && extra_left > 0 {
            extra_left -= 1;
            min_quota + 1
        } else {
            min_quota
        };
        let keep = have.min(quota);
        for &g in &list[keep as usize..] {
            owner[g as usize] = NONE;
        }
        count[m] = keep;
    }

    let free: Vec<u32> = (0..total).filter(|&g| owner[g as usize] == NONE).collect();
    let mut free = free.into_iter();
    for (m, c) in count.iter_mut().enumerate() {
        while *c < min_quota {
            let g = free.next().expect("quotas sum to the partition count");
            owner[g as usize] = m as u32;
            *c += 1;
        }
    }
    for (m, c) in count.iter_mut().enumerate() {
        if extra_left == 0 {
            break;
        }
        if *c == min_quota {
            let g = free.next().expect("quotas sum to the partition count");
            owner[g as usize] = m as u32;
            *c += 1;
            extra_left -= 1;
        }
    }
    debug_assert!(free.next().is_none(), "every partition assigned");
    owner
}

/// Unequal subscriptions. Keep every current claim; give each unowned
/// partition, most constrained topics first, to its least-loaded
/// subscriber; then, topic by topic until nothing changes, move partitions
/// from their most-loaded holder to the least-loaded subscriber while the
/// two differ by two or more. Each move lowers `Σ count²`, so this ends, and
/// it ends balanced in Kafka's sense. Only moves balance requires are made.
fn general(ix: &Indexed<'_>, mut owner: Vec<u32>) -> Vec<u32> {
    let claimed = owner.clone();
    let n = ix.members.len();
    let mut count = vec![0u32; n];
    for &o in &owner {
        if o != NONE {
            count[o as usize] += 1;
        }
    }

    let topics = ix.topics.len() as u32;
    let mut order: Vec<u32> = (0..topics).collect();
    order.sort_by_key(|&t| (ix.subscribers[t as usize].len(), t));
    for t in order {
        let range = ix.topic_start[t as usize]..ix.topic_start[t as usize + 1];
        if !owner[range.start as usize..range.end as usize].contains(&NONE) {
            continue;
        }
        let mut heap: BinaryHeap<Reverse<(u32, u32)>> = ix.subscribers[t as usize]
            .iter()
            .map(|&m| Reverse((count[m as usize], m)))
            .collect();
        for g in range {
            if owner[g as usize] != NONE {
                continue;
            }
            let Reverse((_, m)) = heap.pop().expect("indexed topics have a subscriber");
            owner[g as usize] = m;
            count[m as usize] += 1;
            heap.push(Reverse((count[m as usize], m)));
        }
    }

    loop {
        let mut moved = false;
        for t in 0..topics {
            moved |= balance_topic(ix, t, &claimed, &mut owner, &mut count);
        }
        if !moved {
            return owner;
        }
    }
}

/// Moves partitions of topic `t` from the most-loaded holder to the
/// least-loaded subscriber while they differ by two or more. A holder gives
/// up partitions it did not own before this assignment first: moving those
/// costs no revocation, so balance never takes an owned partition while a
/// fresh one would do. Heaps hold
/// `(count, member)` entries that may be stale; an entry is trusted only if
/// its count is the member's current count, and every count change pushes a
/// fresh entry.
fn balance_topic(
    ix: &Indexed<'_>,
    t: u32,
    claimed: &[u32],
    owner: &mut [u32],
    count: &mut [u32],
) -> bool {
    let subscribers = &ix.subscribers[t as usize];
    if subscribers.len() < 2 {
        return false;
    }
    let range = ix.topic_start[t as usize]..ix.topic_start[t as usize + 1];
    // Most topics are already balanced: find out with one scan and no
    // allocation before building heaps.
    let min_sub = subscribers
        .iter()
        .map(|&m| count[m as usize])
        .min()
        .unwrap_or(0);
    let max_holder = owner[range.start as usize..range.end as usize]
        .iter()
        .filter(|&&o| o != NONE)
        .map(|&o| count[o as usize])
        .max()
        .unwrap_or(0);
    if max_holder < min_sub + 2 {
        return false;
    }
    // Each holder's partitions of `t`, popped from the end: fresh ones last
    // in the list so they go first.
    let mut held: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for g in range {
        if owner[g as usize] != NONE {
            held.entry(owner[g as usize]).or_default().push(g);
        }
    }
    for (m, list) in &mut held {
        list.sort_by_key(|&g| (claimed[g as usize] != *m, g));
    }
    let mut lows: BinaryHeap<Reverse<(u32, u32)>> = subscribers
        .iter()
        .map(|&m| Reverse((count[m as usize], m)))
        .collect();
    let mut highs: BinaryHeap<(u32, Reverse<u32>)> = held
        .keys()
        .map(|&m| (count[m as usize], Reverse(m)))
        .collect();
    let mut moved = false;
    loop {
        let lo = loop {
            let Some(&Reverse((c, m))) = lows.peek() else {
                return moved;
            };
            if c == count[m as usize] {
                break m;
            }
            lows.pop();
        };
        let hi = loop {
            let Some(&(c, Reverse(m))) = highs.peek() else {
                return moved;
            };
            if c == count[m as usize] && held.get(&m).is_some_and(|v| !v.is_empty()) {
                break m;
            }
            highs.pop();
        };
        if count[hi as usize] < count[lo as usize] + 2 {
            return moved;
        }
        let g = held
            .get_mut(&hi)
            .and_then(Vec::pop)
            .expect("hi holds a partition of t");
        owner[g as usize] = lo;
        held.entry(lo).or_default().push(g);
        count[hi as usize] -= 1;
        count[lo as usize] += 1;
        lows.push(Reverse((count[lo as usize], lo)));
        lows.push(Reverse((count[hi as usize], hi)));
        highs.push((count[lo as usize], Reverse(lo)));
        highs.push((count[hi as usize], Reverse(hi)));
        moved = true;
    }
}
