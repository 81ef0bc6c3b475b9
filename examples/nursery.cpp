// nursery.cpp: wsrt::Group as a Trio-style nursery from C++.
//
// Every task spawned into the group is done when the block that made the
// group ends: its destructor waits. A deadline bounds that wait: the tasks
// still running then see wsrt_cancel_requested() and stop, the ones not
// started yet never start.
//
// Build (from the repository root, after `cargo build`):
//   g++ -std=c++17 -pthread -I include examples/nursery.cpp -o nursery -L target/debug -lwsrt -Wl,-rpath,target/debug
#include "wsrt.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <vector>

int main() {
  wsrt::Runtime rt(2);
  std::atomic<int> finished{0}, stopped{0};
  std::vector<wsrt::Task<long>> tasks;
  {
    wsrt::Group nursery(rt);
    for (int i = 0; i < 4; i++) {
      // Short tasks.
      tasks.push_back(nursery.spawn([i, &finished] {
        ++finished;
        return static_cast<long>(i);
      }));
    }
    for (int i = 0; i < 2; i++) {
      // Endless ones: the deadline stops them.
      tasks.push_back(nursery.spawn([&stopped] {
        long spins = 0;
        while (!wsrt_cancel_requested()) ++spins;
        ++stopped;
        return spins;
      }));
    }
    for (int i = 0; i < 4; i++) tasks[i].wait();
    nursery.set_deadline(std::chrono::milliseconds(20));
  }  // waits here for all six: the endless ones until the deadline
  long sum = 0;
  for (int i = 0; i < 4; i++) sum += tasks[i].get();
  std::printf("%d finished (sum %ld), %d stopped by the deadline\n", finished.load(), sum,
              stopped.load());
  return finished == 4 && sum == 6 && stopped == 2 ? 0 : 1;
}
