// graft's side of the transition area in the target (runtime/transition_abi.h):
// the table of thread pointers and their universes, the goal, the revert
// request and the report of pending threads.
//
// graft is the only process that inserts keys, so it keeps a mirror of the
// keys it wrote and finds slots without reading the target. Universe bytes
// are read back from the target, because a thread may move itself
// (graft_quiescent). Every write that gates may race with is either to a slot
// no probe reaches yet (state first, key last) or a single byte.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "process/memory.h"
#include "runtime/transition_abi.h"

namespace graft {

enum class Universe : uint8_t { Old = GRAFT_UNIVERSE_OLD, New = GRAFT_UNIVERSE_NEW };

struct TransitionAreaLayout {
  uint64_t address = 0;  // of the header
  uint32_t capacity = 0;
  uint32_t report_capacity = 0;
  uint64_t table_offset = 0;  // from the header
  uint64_t size = 0;          // page-rounded

  // Sized for a process of `threads` threads: the table stays at most half
  // full even if the thread count quadruples during the transition.
  static TransitionAreaLayout for_threads(size_t threads);
  // The layout for_threads() gave an area of `capacity' entries.
  static TransitionAreaLayout of(uint64_t address, uint32_t capacity, uint32_t report_capacity);
  uint64_t table() const { return address + table_offset; }
  uint64_t goal_byte() const { return address + offsetof(graft_transition_header, goal); }
};

class TransitionArea {
 public:
  TransitionArea(const ProcessMemory& memory, TransitionAreaLayout layout, pid_t driver);

  // Writes the header and a table holding `threads` (all in `universe`,
  // going to `goal`). Only before any gate can read the area.
  void initialize(const std::vector<uint64_t>& threads, Universe universe, Universe goal);
  // Inserts a thread into a live table; throws if the table is too full.
  void insert(uint64_t thread_pointer, Universe universe, Universe goal);
  bool contains(uint64_t thread_pointer) const { return slot_of(thread_pointer).has_value(); }
  // Frees the entry of a thread that has exited (no live thread may have
  // its pointer): marked removed, so that probes go past it, and emptied
  // where no probe can need it (followed by an empty slot); an insert
  // reuses it. Without it, a process that keeps creating threads during a
  // long transition would fill the table.
  void remove(uint64_t thread_pointer);
  // Whether a new thread may take an entry: half the table, the rest kept
  // for the threads the transition moves (sized for them, see for_threads).
  bool has_room_for_new_thread() const { return used_ + 1 <= layout_.capacity / 2; }
  std::vector<uint64_t> keys() const;

  // Every entry's universe as the target has it now (one read).
  void refresh();
  // The universe of a thread: its entry's, or the goal if it has none.
  Universe universe_of(uint64_t thread_pointer) const;
  void set_universe(uint64_t thread_pointer, Universe u);
  // set_universe(), inserting an entry if the thread has none (a thread
  // without one is in the goal universe).
  void put_universe(uint64_t thread_pointer, Universe u);
  // The address of a thread's universe byte, giving the thread an entry (in
  // the universe it is in) if it has none: an exit stub writes it.
  uint64_t universe_byte(uint64_t thread_pointer);
  // Reversal: every entry's goal byte, then the header's.
  void set_goal(Universe goal);
  Universe goal() const { return goal_; }

  bool revert_requested() const;
  struct Pending {
    int tid;
    std::string holding;
  };
  void report(uint32_t total, uint32_t moved, const std::vector<Pending>& pending);

 private:
  std::optional<uint32_t> slot_of(uint64_t thread_pointer) const;
  uint64_t entry_address(uint32_t slot) const;
  void write_key(uint32_t slot, uint64_t key) const;

  const ProcessMemory& memory_;
  TransitionAreaLayout layout_;
  pid_t driver_;
  Universe goal_ = Universe::New;
  std::vector<uint64_t> keys_;             // mirror of the table's keys
  std::vector<graft_universe_entry> now_;  // last refresh()
  uint32_t used_ = 0;
  uint64_t report_seq_ = 0;
};

}  // namespace graft
