// The return stubs' unwind information (src/arch/x86_64/stub_unwind_info.cc):
// its layout as graft's own .eh_frame reader sees it, and, registered with
// this process's libgcc as graft registers it in a target, an exception
// and a backtrace passing a frame whose return address leads to a stub.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unwind.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "arch/x86_64/return_stub.h"
#include "arch/x86_64/stop_stub.h"
#include "arch/x86_64/stub_unwind_info.h"
#include "elf/eh_frame_table.h"

extern "C" void __register_frame_info(const void* begin, void* object);
extern "C" void* __deregister_frame_info(const void* begin);
struct DwarfEhBases {
  void *tbase, *dbase, *func;
};
extern "C" const void* _Unwind_Find_FDE(void* pc, DwarfEhBases* bases);

namespace graft {
namespace {

constexpr uint32_t kStubs = 4;

TEST(StubUnwindInfo, OneFdePerStubFromTheByteBefore) {
  const uint64_t stubs = 0x7f0000010010, at = 0x7f0000011000;
  const uint64_t stop = stubs + 0x800;
  Bytes frames = arch::return_stubs_eh_frame(at, {stubs, kStubs, stop});
  EXPECT_EQ(frames.size(), arch::return_stubs_eh_frame_size(kStubs, true));
  EXPECT_EQ(frames.size() % 8, 4u);  // entries 8-aligned, then the terminator
  EXPECT_EQ(std::vector<uint8_t>(frames.end() - 4, frames.end()), std::vector<uint8_t>(4, 0));
  auto fdes = eh_frame_table(frames, at);
  ASSERT_EQ(fdes.size(), kStubs + 1);
  for (uint32_t i = 0; i < kStubs; ++i) EXPECT_EQ(fdes[i].pc, stubs + i * arch::kReturnStubSize - 1);
  EXPECT_EQ(fdes[kStubs].pc, stop - 1);

  Bytes exit_only = arch::return_stubs_eh_frame(at, {stubs, kStubs, 0});
  EXPECT_EQ(exit_only.size(), arch::return_stubs_eh_frame_size(kStubs, false));
  EXPECT_EQ(eh_frame_table(exit_only, at).size(), kStubs);
  Bytes stop_only = arch::return_stubs_eh_frame(at, {0, 0, stop});
  auto one = eh_frame_table(stop_only, at);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].pc, stop - 1);
  // Out of pc-relative reach.
  EXPECT_ANY_THROW(arch::return_stubs_eh_frame(at, {at + (uint64_t(1) << 32), 1, 0}));
}

// A page with kStubs exit stubs, a stop stub and their .eh_frame, which
// libgcc holds while the object lives, as graft registers it.
class StubPage {
 public:
  explicit StubPage(bool registered) : registered_(registered) {
    page_ = static_cast<uint8_t*>(
        mmap(nullptr, 2 * 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    EXPECT_NE(page_, MAP_FAILED);
    base_ = reinterpret_cast<uint64_t>(page_);
    for (uint32_t i = 0; i < kStubs; ++i) {
      Bytes unused = arch::unused_return_stub();
      std::memcpy(page_ + 16 + i * arch::kReturnStubSize, unused.data(), unused.size());
    }
    Bytes stop = arch::unused_stop_stub(stop_stub());
    std::memcpy(page_ + 0x400, stop.data(), stop.size());
    Bytes frames = arch::return_stubs_eh_frame(base_ + 0x800, {exit_stub(0), kStubs, stop_stub()});
    std::memcpy(page_ + 0x800, frames.data(), frames.size());
    if (registered_) __register_frame_info(page_ + 0x800, object_);
  }
  ~StubPage() {
    if (registered_) __deregister_frame_info(page_ + 0x800);
    munmap(page_, 2 * 4096);
  }
  uint64_t exit_stub(uint32_t i) const { return base_ + 16 + i * arch::kReturnStubSize; }
  uint64_t stop_stub() const { return base_ + 0x400; }
  uint64_t universe_byte() const { return base_ + 4096; }
  void write(uint64_t at, const Bytes& b) { std::memcpy(page_ + (at - base_), b.data(), b.size()); }

 private:
  bool registered_;
  uint8_t* page_;
  uint64_t base_;
  alignas(16) uint64_t object_[16] = {};
};

// What victim() does once its return leads to a stub.
enum class Then { Throw, Backtrace };
struct Scene {
  StubPage* page = nullptr;
  bool stop_stub = false;
  uint64_t original = 0;  // victim's real return address
  std::vector<uint64_t> trace;
};
Scene scene;

_Unwind_Reason_Code collect(_Unwind_Context* ctx, void*) {
  scene.trace.push_back(_Unwind_GetIP(ctx));
  return _URC_NO_REASON;
}

// Points its own return address at a stub, as graft does to a stopped
// thread, then throws to its caller, or takes a backtrace and returns
// (through the stop stub, which runs anywhere; the exit stub's int3 is for
// graft, so that return is put back first).
__attribute__((noinline)) int victim(Then then) {
  auto* slot = reinterpret_cast<volatile uint64_t*>(static_cast<char*>(__builtin_frame_address(0)) + 8);
  scene.original = reinterpret_cast<uint64_t>(__builtin_return_address(0));
  if (*slot != scene.original) return -1;
  arch::ReturnStub s{scene.original, reinterpret_cast<uint64_t>(slot), 1};
  uint64_t stub = scene.stop_stub ? scene.page->stop_stub() : scene.page->exit_stub(2);
  scene.page->write(stub, scene.stop_stub ? arch::stop_stub_code(stub, s)
                                          : arch::return_stub_code(stub, scene.page->universe_byte(), 1, s));
  *slot = stub;
  if (then == Then::Throw) throw std::runtime_error("through the stub");
  scene.trace.clear();
  _Unwind_Backtrace(collect, nullptr);
  if (!scene.stop_stub) *slot = scene.original;
  return 41;
}

__attribute__((noinline)) int caller(Then then) {
  try {
    return victim(then) + 1;
  } catch (const std::runtime_error& e) {
    return std::strcmp(e.what(), "through the stub") == 0 ? 7 : -7;
  }
}

TEST(StubUnwindInfo, LibgccFindsEachStub) {
  StubPage page(true);
  for (uint32_t i = 0; i < kStubs; ++i) {
    DwarfEhBases bases{};
    uint64_t stub = page.exit_stub(i);
    EXPECT_NE(_Unwind_Find_FDE(reinterpret_cast<void*>(stub - 1), &bases), nullptr) << i;
    EXPECT_EQ(reinterpret_cast<uint64_t>(bases.func), stub - 1) << i;
  }
  DwarfEhBases bases{};
  EXPECT_NE(_Unwind_Find_FDE(reinterpret_cast<void*>(page.stop_stub() + 14), &bases), nullptr);
}

TEST(StubUnwindInfo, ExceptionsPassTheStub) {
  for (bool stop : {false, true}) {
    StubPage page(true);
    scene = {&page, stop, 0, {}};
    EXPECT_EQ(caller(Then::Throw), 7) << (stop ? "stop stub" : "exit stub");
  }
}

TEST(StubUnwindInfo, BacktracesShowTheRealCaller) {
  for (bool stop : {false, true}) {
    StubPage page(true);
    scene = {&page, stop, 0, {}};
    EXPECT_EQ(caller(Then::Backtrace), 42);
    uint64_t stub = stop ? page.stop_stub() : page.exit_stub(2);
    auto it = std::find(scene.trace.begin(), scene.trace.end(), stub);
    ASSERT_NE(it, scene.trace.end()) << "the stub is not in the backtrace";
    ASSERT_NE(it + 1, scene.trace.end()) << "the backtrace ends at the stub";
    EXPECT_EQ(*(it + 1), scene.original);
  }
}

void throw_without_unwind_info() {
  StubPage page(false);
  scene = {&page, false, 0, {}};
  caller(Then::Throw);
}

TEST(StubUnwindInfoDeathTest, WithoutItAnExceptionTerminates) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(throw_without_unwind_info(), "");
}

}  // namespace
}  // namespace graft
