//! The allocation engine: which queued GPU requests get which offered capacity.
//!
//! Pure and deterministic: the same queue and the same capacity give the same assignments on
//! every replica. Requests are served in arrival order within each (GPU class, region) pair: a
//! request that cannot be served yet blocks the later requests of the same class and region (so
//! a large request is never starved by a stream of small ones), but not those of other classes
//! or regions. Among the slots that fit,
//! the engine takes the one with the fewest free GPUs (best fit, to keep large slots whole),
//! then the earliest end, then the lowest offer id.

/// A queued request for `gpu_count` GPUs of one class on one host for `duration_ns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u128,
    pub gpu_class: String,
    /// `None`: any region.
    pub region: Option<String>,
    pub gpu_count: u32,
    pub duration_ns: u64,
}

/// Offered capacity on one host: `free_gpus` GPUs of one class available until `end_ns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub offer_id: u128,
    pub gpu_class: String,
    pub region: String,
    pub free_gpus: u32,
    pub end_ns: u64,
}

/// Request `request_id` gets `gpu_count` GPUs of slot `offer_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub request_id: u128,
    pub offer_id: u128,
}

/// Assigns queued requests (in arrival order) to slots at time `now_ns`.
pub fn allocate(queue: &[Request], slots: &[Slot], now_ns: u64) -> Vec<Assignment> {
    let mut free: Vec<u32> = slots.iter().map(|slot| slot.free_gpus).collect();
    let mut blocked: Vec<(&str, Option<&str>)> = Vec::new();
    let mut assignments = Vec::new();
    for request in queue {
        let key = (request.gpu_class.as_str(), request.region.as_deref());
        if blocked.contains(&key) {
            continue;
        }
        let fits = |(index, slot): &(usize, &Slot)| {
            slot.gpu_class == request.gpu_class
                && request
                    .region
                    .as_ref()
                    .is_none_or(|region| *region == slot.region)
                && free[*index] >= request.gpu_count
                && now_ns
                    .checked_add(request.duration_ns)
                    .is_some_and(|end| end <= slot.end_ns)
        };
        let best = slots
            .iter()
            .enumerate()
            .filter(fits)
            .min_by_key(|(index, slot)| (free[*index], slot.end_ns, slot.offer_id));
        match best {
            Some((index, slot)) => {
                free[index] -= request.gpu_count;
                assignments.push(Assignment {
                    request_id: request.id,
                    offer_id: slot.offer_id,
                });
            }
            None => blocked.push(key),
        }
    }
    assignments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: u128, class: &str, count: u32, duration_ns: u64) -> Request {
        Request {
            id,
            gpu_class: class.into(),
            region: None,
            gpu_count: count,
            duration_ns,
        }
    }

    fn slot(offer_id: u128, class: &str, free: u32, end_ns: u64) -> Slot {
        Slot {
            offer_id,
            gpu_class: class.into(),
            region: "bj".into(),
            free_gpus: free,
            end_ns,
        }
    }

    #[test]
    fn arrival_order_within_a_class_and_best_fit() {
        let queue = [
            request(1, "H100", 4, 10),
            request(2, "H100", 8, 10),
            request(3, "H100", 1, 10),
            request(4, "A100", 1, 10),
        ];
        let slots = [
            slot(10, "H100", 8, 100),
            slot(11, "H100", 5, 100),
            slot(12, "A100", 1, 100),
        ];
        let got = allocate(&queue, &slots, 0);
        // 1 takes the tighter slot 11; 2 takes all of 10; 3 fits in what is left of 11; 4 is A100.
        assert_eq!(
            got,
            vec![
                Assignment {
                    request_id: 1,
                    offer_id: 11
                },
                Assignment {
                    request_id: 2,
                    offer_id: 10
                },
                Assignment {
                    request_id: 3,
                    offer_id: 11
                },
                Assignment {
                    request_id: 4,
                    offer_id: 12
                },
            ]
        );
    }

    #[test]
    fn a_blocked_request_holds_back_its_class_only() {
        let queue = [
            request(1, "H100", 16, 10),
            request(2, "H100", 1, 10),
            request(3, "A100", 1, 10),
        ];
        let slots = [slot(10, "H100", 8, 100), slot(12, "A100", 2, 100)];
        assert_eq!(
            allocate(&queue, &slots, 0),
            vec![Assignment {
                request_id: 3,
                offer_id: 12
            }]
        );
    }

    #[test]
    fn a_blocked_region_does_not_hold_back_another() {
        let mut far = request(1, "H100", 1, 10);
        far.region = Some("nowhere".into());
        let queue = [far, request(2, "H100", 1, 10)];
        assert_eq!(
            allocate(&queue, &[slot(10, "H100", 8, 100)], 0),
            vec![Assignment {
                request_id: 2,
                offer_id: 10
            }]
        );
    }

    #[test]
    fn a_request_must_end_within_the_window_and_region() {
        let mut late = request(1, "H100", 1, 200);
        assert!(allocate(&[late.clone()], &[slot(10, "H100", 8, 100)], 0).is_empty());
        late.duration_ns = 50;
        late.region = Some("sh".into());
        assert!(allocate(&[late], &[slot(10, "H100", 8, 100)], 0).is_empty());
    }
}
