//! The world a bench runs in: the operator, trading parties with funded accounts, and (for the
//! market benches) a product, a token provider and its package, and (for `soak`) a government
//! with a voucher programme and one voucher per party.
//!
//! Parties sign with demo keys (`ledger::testing::demo_key`, derived from the party id: public
//! knowledge, for tests, benchmarks and demos only). The world is a list of [`Step`]s, so the
//! same world is built in a local `Ledger` (`cbank bench apply`) or through a cluster's HTTP
//! API (the cluster benches). Ids are laid out by position, so every bench can name any
//! account without asking the ledger. This file never times anything.

use ledger::shelf::{PackageSpec, PurchaseSpec};
use ledger::testing::{demo_key, OPERATOR};
use ledger::trading::ProductSpec;
use ledger::vouchers::{Beneficiaries, Eligible, ProgrammeSpec, VoucherSpec};
use ledger::{
    AccountFlags, AccountKind, Asset, Command, NewAccount, PartyId, Role, SigningKey, Transfer,
};

/// The assets of every bench world (the same as `ledger::testing::Harness`'s genesis).
pub(crate) const ASSETS: [&str; 3] = ["CNY", "GPUH:H100", "TOK:qwen"];

/// The continuous order book the `orders` bench trades on.
pub(crate) const PRODUCT: &str = "GPUH:H100/CNY";

/// One lot of [`PRODUCT`]: an H100-hour in GPU-seconds.
pub(crate) const LOT_SIZE_GPU_S: u128 = 3_600;

/// The token provider of the `meter` bench and its package.
pub(crate) const PROVIDER: &str = "bench-provider";
pub(crate) const PACKAGE: &str = "bench-qwen";

/// Tokens in one package: enough that no bench run exhausts a quota.
pub(crate) const PACKAGE_TOKENS: u128 = 1_000_000_000_000_000;

/// The government of the voucher programme, its CNY account, and the programme.
pub(crate) const GOVERNMENT: &str = "bench-government";
pub(crate) const GOVERNMENT_ACCOUNT: u128 = 900_001;
pub(crate) const PROGRAMME: &str = "bench-programme";

/// The programme's budget, and what each party's voucher holds (¥1,000,000): far more than a
/// run redeems at 30% of ¥9.90 a purchase.
const PROGRAMME_BUDGET_FEN: u128 = 1_000_000_000_000;
pub(crate) const VOUCHER_FEN: u128 = 100_000_000;

/// The programme pays 30% of a package, at most ¥2,000,000 per firm a year (the seeds' figures).
const PROGRAMME_SHARE_BPS: u16 = 3_000;
const PROGRAMME_CAP_PER_YEAR_FEN: u128 = 200_000_000;

/// The programme and its vouchers run until 2100-01-01 UTC: fixed, so the world's steps are the
/// same whenever they are built.
pub(crate) const PROGRAMME_UNTIL_NS: u64 = 4_102_444_800 * 1_000_000_000;

/// The id of the voucher of the party at position 0; the others follow.
const WORLD_VOUCHER_ID_START: u128 = 20_000;

/// Every party account gets this much of each of its assets from the mint.
pub(crate) const FUNDS: u128 = 1_000_000_000_000_000;

/// Transfer ids of the world's own funding transfers start here; bench transfers start at
/// [`BENCH_TRANSFER_ID_START`].
const FUNDING_TRANSFER_ID_START: u128 = 1_000_000_000;

/// The first id of the transfers, orders and events a bench makes.
pub(crate) const BENCH_TRANSFER_ID_START: u128 = 1_000_000_000_000;

/// The shape of a world.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WorldSpec {
    pub(crate) parties: usize,
    /// CNY accounts per party (at least 2 when there is only one party).
    pub(crate) cny_accounts: usize,
    /// Each party also gets a `GPUH:H100` account, and [`PRODUCT`] is listed.
    pub(crate) market: bool,
    /// Each party also gets a `TOK:qwen` account and buys one [`PACKAGE`] from [`PROVIDER`].
    pub(crate) tokens: bool,
    /// [`GOVERNMENT`] runs [`PROGRAMME`], which pays 30% of [`PACKAGE`] purchases, and issues
    /// each party one voucher of [`VOUCHER_FEN`] (needs `tokens`, which lists the package).
    pub(crate) vouchers: bool,
}

/// One trading party of the world.
pub(crate) struct Party {
    pub(crate) id: PartyId,
    pub(crate) key: SigningKey,
    pub(crate) cny: Vec<u128>,
    pub(crate) gpu: u128,
    pub(crate) tok: u128,
    /// Its voucher, when the world has vouchers.
    pub(crate) voucher: u128,
}

/// One step of building the world.
pub(crate) enum Step {
    /// Register a party with its demo key (signed by the operator).
    Register { party: String, role: Role },
    /// A command signed by `signer` (boxed: commands are large, registrations small).
    Command {
        signer: String,
        command: Box<Command>,
    },
}

/// Parties, accounts and the steps that make them.
pub(crate) struct World {
    pub(crate) spec: WorldSpec,
    pub(crate) parties: Vec<Party>,
}

fn asset(code: &str) -> Asset {
    // The constants above are valid codes; a test checks it.
    code.parse().unwrap_or(Asset::Cny)
}

fn guarded(id: u128, asset: Asset) -> NewAccount {
    NewAccount {
        id,
        asset,
        kind: AccountKind::Main,
        flags: AccountFlags {
            debits_must_not_exceed_credits: true,
            ..AccountFlags::default()
        },
        reference: 0,
    }
}

/// The provider's CNY account (paid for packages).
pub(crate) const PROVIDER_ACCOUNT: u128 = 900_000;

impl World {
    pub(crate) fn new(spec: WorldSpec) -> World {
        let parties = (0..spec.parties)
            .map(|position| {
                let name = party_name(position);
                let base = 1_000_000 + 1_000 * position as u128;
                Party {
                    key: demo_key(&name),
                    id: PartyId::new(&name),
                    cny: (0..spec.cny_accounts as u128).map(|a| base + a).collect(),
                    gpu: base + 900,
                    tok: base + 901,
                    voucher: WORLD_VOUCHER_ID_START + position as u128,
                }
            })
            .collect();
        World { spec, parties }
    }

    /// Every CNY account of every party, in party order.
    pub(crate) fn cny_accounts(&self) -> Vec<u128> {
        self.parties
            .iter()
            .flat_map(|party| party.cny.iter().copied())
            .collect()
    }

    /// The genesis command (signed by [`OPERATOR`]); `Harness::new` applies the same one.
    pub(crate) fn genesis() -> Command {
        Command::Genesis {
            operator: PartyId::new(OPERATOR),
            keys: vec![demo_key(OPERATOR).public_key()],
            assets: ASSETS.map(asset).to_vec(),
        }
    }

    /// The steps after genesis, in order.
    pub(crate) fn steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut funding: Vec<Transfer> = Vec::new();
        let mut funding_id = FUNDING_TRANSFER_ID_START;
        let mut fund = |from_asset: &str, to: u128, funding: &mut Vec<Transfer>| {
            funding_id += 1;
            let mint = ledger::ids::system_account_id(&asset(from_asset), AccountKind::Mint);
            funding.push(transfer(funding_id, mint, to, FUNDS));
        };
        if self.spec.tokens {
            steps.push(Step::Register {
                party: PROVIDER.to_owned(),
                role: Role::Provider,
            });
            steps.push(Step::Command {
                signer: PROVIDER.to_owned(),
                command: Box::new(Command::CreateAccounts {
                    accounts: vec![guarded(PROVIDER_ACCOUNT, Asset::Cny)],
                }),
            });
        }
        if self.spec.vouchers {
            steps.push(Step::Register {
                party: GOVERNMENT.to_owned(),
                role: Role::Government,
            });
            steps.push(Step::Command {
                signer: GOVERNMENT.to_owned(),
                command: Box::new(Command::CreateAccounts {
                    accounts: vec![guarded(GOVERNMENT_ACCOUNT, Asset::Cny)],
                }),
            });
            fund("CNY", GOVERNMENT_ACCOUNT, &mut funding);
        }
        for party in &self.parties {
            steps.push(Step::Register {
                party: party.id.as_str().to_owned(),
                role: Role::Sme,
            });
            let mut accounts: Vec<NewAccount> = party
                .cny
                .iter()
                .map(|id| guarded(*id, Asset::Cny))
                .collect();
            for id in &party.cny {
                fund("CNY", *id, &mut funding);
            }
            if self.spec.market {
                accounts.push(guarded(party.gpu, asset("GPUH:H100")));
                fund("GPUH:H100", party.gpu, &mut funding);
            }
            if self.spec.tokens {
                accounts.push(guarded(party.tok, asset("TOK:qwen")));
            }
            for chunk in accounts.chunks(ledger::limits::ACCOUNTS_PER_BATCH_MAX) {
                steps.push(Step::Command {
                    signer: party.id.as_str().to_owned(),
                    command: Box::new(Command::CreateAccounts {
                        accounts: chunk.to_vec(),
                    }),
                });
            }
        }
        for chunk in funding.chunks(ledger::limits::TRANSFERS_PER_BATCH_MAX) {
            steps.push(Step::Command {
                signer: OPERATOR.to_owned(),
                command: Box::new(Command::CreateTransfers {
                    transfers: chunk.to_vec(),
                }),
            });
        }
        if self.spec.market {
            steps.push(Step::Command {
                signer: OPERATOR.to_owned(),
                command: Box::new(Command::ListProduct {
                    product: ProductSpec {
                        product_id: PRODUCT.to_owned(),
                        base: asset("GPUH:H100"),
                        quote: Asset::Cny,
                        lot_size: LOT_SIZE_GPU_S,
                        tick: 1,
                        fee_bps: 30,
                        auction_interval_s: None,
                    },
                }),
            });
        }
        if self.spec.tokens {
            steps.push(Step::Command {
                signer: PROVIDER.to_owned(),
                command: Box::new(Command::ListPackage {
                    package: PackageSpec {
                        package_id: PACKAGE.to_owned(),
                        title: "bench tokens".to_owned(),
                        asset: asset("TOK:qwen"),
                        quantity: PACKAGE_TOKENS,
                        price: 990,
                        validity_s: 30 * 24 * 3600,
                        stock: 1_000_000,
                        seller_account_id: PROVIDER_ACCOUNT,
                        goods_account_id: None,
                        provider: Some(PartyId::new(PROVIDER)),
                    },
                }),
            });
            for (position, party) in self.parties.iter().enumerate() {
                steps.push(Step::Command {
                    signer: party.id.as_str().to_owned(),
                    command: Box::new(Command::BuyPackage {
                        purchase: PurchaseSpec {
                            purchase_id: 10_000 + position as u128,
                            package_id: PACKAGE.to_owned(),
                            pay_account_id: party.cny[0],
                            receive_account_id: party.tok,
                            vouchers: Vec::new(),
                        },
                    }),
                });
            }
        }
        if self.spec.vouchers {
            steps.extend(self.voucher_steps());
        }
        steps
    }

    /// The programme and one voucher per party, signed by [`GOVERNMENT`].
    fn voucher_steps(&self) -> Vec<Step> {
        let programme = ProgrammeSpec {
            programme_id: PROGRAMME.to_owned(),
            title: "bench vouchers".to_owned(),
            budget: PROGRAMME_BUDGET_FEN,
            funding_account_id: GOVERNMENT_ACCOUNT,
            eligible: Eligible {
                products: Vec::new(),
                packages: vec![PACKAGE.to_owned()],
                assets: Vec::new(),
            },
            max_share_bps: PROGRAMME_SHARE_BPS,
            cap_per_beneficiary_per_year: PROGRAMME_CAP_PER_YEAR_FEN,
            valid_from_ns: 0,
            valid_until_ns: PROGRAMME_UNTIL_NS,
            beneficiaries: Beneficiaries::Role(Role::Sme),
            stackable: false,
        };
        let government = || GOVERNMENT.to_owned();
        let mut steps = vec![Step::Command {
            signer: government(),
            command: Box::new(Command::CreateProgramme { programme }),
        }];
        for party in &self.parties {
            steps.push(Step::Command {
                signer: government(),
                command: Box::new(Command::IssueVoucher {
                    voucher: VoucherSpec {
                        voucher_id: party.voucher,
                        programme_id: PROGRAMME.to_owned(),
                        beneficiary: party.id.clone(),
                        amount: VOUCHER_FEN,
                        expires_at_ns: PROGRAMME_UNTIL_NS,
                    },
                }),
            });
        }
        steps
    }
}

/// Builds `world` in a local ledger: a `Harness` (whose genesis is [`World::genesis`]) with
/// every step applied, each accepted (`cbank bench apply` and the unit tests).
pub(crate) fn harness_with(world: &World) -> ledger::testing::Harness {
    let mut harness = ledger::testing::Harness::new();
    for step in world.steps() {
        match step {
            Step::Register { party, role } => harness.add_party(&party, role),
            Step::Command { signer, command } => {
                harness.expect_accepted(&signer, *command);
            }
        }
    }
    harness
}

/// A single-phase transfer of `amount` (code 1, no reference).
pub(crate) fn transfer(
    id: u128,
    debit_account_id: u128,
    credit_account_id: u128,
    amount: u128,
) -> Transfer {
    Transfer {
        id,
        debit_account_id,
        credit_account_id,
        amount,
        pending_id: 0,
        timeout_s: 0,
        code: 1,
        reference: 0,
        flags: ledger::TransferFlags::default(),
    }
}

/// The id of the party at `position`.
pub(crate) fn party_name(position: usize) -> String {
    format!("bench-{position:04}")
}

/// The signing key of a world party, the provider or the operator.
pub(crate) fn key_of(party: &str) -> SigningKey {
    demo_key(party)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_builds_in_a_ledger() {
        for code in ASSETS {
            assert!(code.parse::<Asset>().is_ok(), "{code}");
        }
        let world = World::new(WorldSpec {
            parties: 3,
            cny_accounts: 2,
            market: true,
            tokens: true,
            vouchers: true,
        });
        let harness = harness_with(&world);
        let ledger = &harness.ledger;
        for party in &world.parties {
            for id in party.cny.iter().chain([&party.gpu]) {
                let account = ledger.account(*id).expect("opened");
                assert!(account.balances.credits_posted > 0, "{id} funded");
            }
        }
        for party in &world.parties {
            let voucher = &ledger.vouchers().vouchers[&party.voucher];
            assert_eq!(voucher.spec.beneficiary, party.id);
        }
        assert_eq!(world.cny_accounts().len(), 6);
        ledger.check_invariants().unwrap();
    }
}
