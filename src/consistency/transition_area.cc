#include "consistency/transition_area.h"

#include <cstddef>
#include <cstring>

#include "common/error.h"
#include "common/file.h"
#include "common/address_range.h"
#include "common/hash.h"

namespace graft {

static_assert(sizeof(graft_transition_header) <= GRAFT_TRANSITION_REPORT_OFFSET);
static_assert(sizeof(graft_universe_entry) == 16, "the gates index entries by 16 bytes");
static_assert(offsetof(graft_universe_entry, universe) == 8, "the gates read the universe at +8");

TransitionAreaLayout TransitionAreaLayout::for_threads(size_t threads) {
  uint32_t cap = 1024;
  while (cap < 8 * (threads + 8) && cap < 65536) cap *= 2;
  return of(0, cap, std::min<uint32_t>(cap / 2, 1024));
}

TransitionAreaLayout TransitionAreaLayout::of(uint64_t address, uint32_t capacity, uint32_t report_capacity) {
  TransitionAreaLayout l;
  l.address = address;
  l.capacity = capacity;
  l.report_capacity = report_capacity;
  l.table_offset = page_round_up(GRAFT_TRANSITION_REPORT_OFFSET +
                                 uint64_t(report_capacity) * sizeof(graft_report_entry));
  l.size = page_round_up(l.table_offset + uint64_t(capacity) * sizeof(graft_universe_entry));
  return l;
}

TransitionArea::TransitionArea(const ProcessMemory& memory, TransitionAreaLayout layout, pid_t driver)
    : memory_(memory), layout_(layout), driver_(driver), keys_(layout.capacity, 0) {}

uint64_t TransitionArea::entry_address(uint32_t slot) const {
  return layout_.table() + uint64_t(slot) * sizeof(graft_universe_entry);
}

std::optional<uint32_t> TransitionArea::slot_of(uint64_t tp) const {
  uint32_t mask = layout_.capacity - 1;
  for (uint32_t i = graft_transition_slot(tp, layout_.capacity);; i = (i + 1) & mask) {
    if (keys_[i] == tp) return i;
    if (keys_[i] == 0) return std::nullopt;
  }
}

std::vector<uint64_t> TransitionArea::keys() const {
  std::vector<uint64_t> out;
  for (uint64_t k : keys_)
    if (k && k != GRAFT_REMOVED_ENTRY) out.push_back(k);
  return out;
}

void TransitionArea::initialize(const std::vector<uint64_t>& threads, Universe universe, Universe goal) {
  goal_ = goal;
  std::vector<graft_universe_entry> table(layout_.capacity);
  for (uint64_t tp : threads) {
    if (tp == 0 || slot_of(tp)) continue;
    if (used_ + 1 > layout_.capacity / 2) fail("transition table full ({} threads)", used_);
    uint32_t mask = layout_.capacity - 1;
    uint32_t i = graft_transition_slot(tp, layout_.capacity);
    while (keys_[i]) i = (i + 1) & mask;
    keys_[i] = tp;
    table[i] = {tp, static_cast<uint8_t>(universe), static_cast<uint8_t>(goal), {}};
    ++used_;
  }
  // The goal first: a thread still in a gate of an earlier transition of
  // this area (an apply's last entry writes send trapped threads there)
  // finds no entry once the table is cleared, and goes by the goal.
  uint8_t g = static_cast<uint8_t>(goal);
  memory_.write({layout_.goal_byte()}, {&g, 1});
  graft_transition_header h{};
  std::memcpy(h.magic, GRAFT_TRANSITION_MAGIC, 8);
  h.version = GRAFT_TRANSITION_VERSION;
  h.capacity = layout_.capacity;
  h.table_offset = layout_.table_offset;
  h.goal = static_cast<uint8_t>(goal);
  h.driver_pid = driver_;
  h.report_capacity = layout_.report_capacity;
  memory_.write({layout_.table()}, {reinterpret_cast<const uint8_t*>(table.data()),
                                    table.size() * sizeof(table[0])});
  memory_.write({layout_.address}, {reinterpret_cast<const uint8_t*>(&h), sizeof h});
  now_ = table;
}

void TransitionArea::insert(uint64_t tp, Universe universe, Universe goal) {
  if (tp == 0 || slot_of(tp)) return;
  // write_key() relies on it; the gates' callers check it first.
  if ((tp & 7) != 0) fail("thread pointer {:#x} is not aligned", tp);
  uint32_t mask = layout_.capacity - 1;
  uint32_t i = graft_transition_slot(tp, layout_.capacity);
  // The first free slot of its probe sequence: one removed (a probe for
  // another key that passes it sees one key instead of another) or empty.
  while (keys_[i] && keys_[i] != GRAFT_REMOVED_ENTRY) i = (i + 1) & mask;
  bool reused = keys_[i] == GRAFT_REMOVED_ENTRY;
  if (!reused && used_ + 1 > layout_.capacity * 3 / 4)
    fail("transition table full ({} threads of {} slots)", used_, layout_.capacity);
  graft_universe_entry e{tp, static_cast<uint8_t>(universe), static_cast<uint8_t>(goal), {}};
  // The state first: a probe matches the key only once all of it is there.
  memory_.write({entry_address(i) + 8}, {reinterpret_cast<const uint8_t*>(&e) + 8, 8});
  write_key(i, tp);
  keys_[i] = tp;
  if (now_.size() == keys_.size()) now_[i] = e;
  if (!reused) ++used_;
}

// A key changes while gates probe it, and /proc/PID/mem may store the 8
// bytes in any order: the low byte becomes 1 first (one byte: atomic), then
// the other seven, then the low byte. Every value a probe can see meanwhile
// is odd, so neither empty (a probe would stop early) nor a thread pointer
// (those are aligned).
void TransitionArea::write_key(uint32_t slot, uint64_t key) const {
  uint64_t at = entry_address(slot);
  const uint8_t odd = 1;
  memory_.write({at}, {&odd, 1});
  memory_.write({at + 1}, {reinterpret_cast<const uint8_t*>(&key) + 1, 7});
  memory_.write({at}, {reinterpret_cast<const uint8_t*>(&key), 1});
}

void TransitionArea::remove(uint64_t tp) {
  auto slot = slot_of(tp);
  if (!slot) return;
  uint32_t mask = layout_.capacity - 1;
  auto set_key = [&](uint32_t i, uint64_t key) {
    write_key(i, key);
    keys_[i] = key;
    if (now_.size() == keys_.size()) now_[i].thread_pointer = key;
  };
  set_key(*slot, GRAFT_REMOVED_ENTRY);
  // A removed slot followed by an empty one is on no key's probe sequence
  // (that would continue through the empty slot): empty it, and so on
  // backwards. A probe racing with this ends one slot early, at a key it
  // would not have found.
  for (uint32_t i = *slot; keys_[i] == GRAFT_REMOVED_ENTRY && keys_[(i + 1) & mask] == 0; i = (i - 1) & mask) {
    set_key(i, 0);
    --used_;
  }
}

void TransitionArea::refresh() {
  now_.resize(layout_.capacity);
  if (!memory_.try_read({layout_.table()}, now_.data(), now_.size() * sizeof(now_[0])))
    fail("cannot read the transition table at {:#x}", layout_.table());
}

Universe TransitionArea::universe_of(uint64_t tp) const {
  auto slot = slot_of(tp);
  if (!slot) return goal_;
  return now_[*slot].universe == GRAFT_UNIVERSE_NEW ? Universe::New : Universe::Old;
}

void TransitionArea::set_universe(uint64_t tp, Universe u) {
  auto slot = slot_of(tp);
  if (!slot) {
    if (u != goal_) fail("thread pointer {:#x} has no entry", tp);
    return;
  }
  uint8_t b = static_cast<uint8_t>(u);
  memory_.write({entry_address(*slot) + offsetof(graft_universe_entry, universe)}, {&b, 1});
  now_[*slot].universe = b;
}

void TransitionArea::put_universe(uint64_t tp, Universe u) {
  if (slot_of(tp))
    set_universe(tp, u);
  else if (u != goal_)
    insert(tp, u, goal_);
}

uint64_t TransitionArea::universe_byte(uint64_t tp) {
  if (!slot_of(tp)) insert(tp, universe_of(tp), goal_);
  return entry_address(*slot_of(tp)) + offsetof(graft_universe_entry, universe);
}

void TransitionArea::set_goal(Universe goal) {
  uint8_t b = static_cast<uint8_t>(goal);
  for (uint32_t i = 0; i < layout_.capacity; ++i)
    if (keys_[i]) {
      memory_.write({entry_address(i) + offsetof(graft_universe_entry, goal)}, {&b, 1});
      now_[i].goal = b;
    }
  memory_.write({layout_.goal_byte()}, {&b, 1});
  goal_ = goal;
}

bool TransitionArea::revert_requested() const {
  uint8_t b = 0;
  memory_.try_read({layout_.address + offsetof(graft_transition_header, revert_request)}, &b, 1);
  return b != 0;
}

void TransitionArea::report(uint32_t total, uint32_t moved, const std::vector<Pending>& pending) {
  std::vector<graft_report_entry> e;
  for (const auto& p : pending) {
    if (e.size() >= layout_.report_capacity) break;
    graft_report_entry x{};
    x.tid = p.tid;
    std::strncpy(x.holding, p.holding.c_str(), sizeof x.holding - 1);
    e.push_back(x);
  }
  if (!e.empty())
    memory_.write({layout_.address + GRAFT_TRANSITION_REPORT_OFFSET},
                  {reinterpret_cast<const uint8_t*>(e.data()), e.size() * sizeof e[0]});
  uint32_t counts[3] = {static_cast<uint32_t>(e.size()), total, moved};
  static_assert(offsetof(graft_transition_header, threads_moved) ==
                offsetof(graft_transition_header, report_count) + 8);
  memory_.write({layout_.address + offsetof(graft_transition_header, report_count)},
                {reinterpret_cast<const uint8_t*>(counts), sizeof counts});
  uint64_t seq = ++report_seq_;
  memory_.write({layout_.address + offsetof(graft_transition_header, report_seq)},
                {reinterpret_cast<const uint8_t*>(&seq), sizeof seq});
}

}  // namespace graft
