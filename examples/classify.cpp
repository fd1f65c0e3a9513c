// classify.cpp: vitq from C++17 through the C header, with small RAII wrappers.
//   classify_cpp MODEL IMAGES [COUNT]
// loads a model and an IDX/.npy image file and prints the top class of the first COUNT images, as
// classify.c does. Build: c++ -std=c++17 classify.cpp $(pkg-config --cflags --libs vitq)
//
// The wrappers are the whole binding a C++ program needs: each handle lives in a std::unique_ptr whose
// deleter is vitq's free function, and each status becomes an exception carrying vitq's message.
// They are an example, not an installed header: vitq's stable interface is the C ABI (docs/api.md).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "vitq.h"

namespace {

// A vitq status as an exception: the status, its name and the detail naming what was at fault.
class vitq_error : public std::runtime_error {
  public:
    vitq_error(const std::string &what, vitq_status status)
        : std::runtime_error(what + ": " + vitq_status_string(status) + " (" + vitq_last_error() + ")"),
          status_(status) {}
    vitq_status status() const { return status_; }

  private:
    vitq_status status_;
};

void check(vitq_status status, const std::string &what) {
    if (status != VITQ_OK) throw vitq_error(what, status);
}

struct model_deleter {
    void operator()(vitq_model *m) const { vitq_model_free(m); }
};
struct dataset_deleter {
    void operator()(vitq_dataset *d) const { vitq_dataset_free(d); }
};
using model_ptr = std::unique_ptr<vitq_model, model_deleter>;
using dataset_ptr = std::unique_ptr<vitq_dataset, dataset_deleter>;

model_ptr load_model(const std::string &path) {
    vitq_model *m = nullptr;
    check(vitq_model_load_file(path.c_str(), nullptr, &m), path);
    return model_ptr(m);
}

dataset_ptr load_images(const std::string &path) {
    vitq_dataset *d = nullptr;
    check(vitq_dataset_load_file(path.c_str(), nullptr, nullptr, &d), path);
    return dataset_ptr(d);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s MODEL IMAGES [COUNT]\n", argv[0]);
        return 2;
    }
    try {
        model_ptr model = load_model(argv[1]);
        dataset_ptr images = load_images(argv[2]);
        vitq_model_info mi;
        vitq_dataset_info di;
        vitq_model_info_init(&mi);
        vitq_dataset_info_init(&di);
        check(vitq_model_get_info(model.get(), &mi), "model info");
        check(vitq_dataset_get_info(images.get(), &di), "dataset info");
        size_t count = argc > 3 ? static_cast<size_t>(std::strtoul(argv[3], nullptr, 10)) : 8;
        if (count > static_cast<size_t>(di.count)) count = static_cast<size_t>(di.count);
        const size_t classes = static_cast<size_t>(mi.num_classes);
        std::vector<float> logits(count * classes);
        check(vitq_model_forward_dataset(model.get(), images.get(), 0, count, logits.data()), "forward");
        for (size_t i = 0; i < count; i++) {
            const float *row = logits.data() + i * classes;
            size_t best = 0;
            for (size_t c = 1; c < classes; c++)
                if (row[c] > row[best]) best = c;
            std::printf("image %zu: class %zu (logit %.3f)\n", i, best, static_cast<double>(row[best]));
        }
    } catch (const vitq_error &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    } catch (const std::bad_alloc &) {
        std::fprintf(stderr, "out of memory\n");
        return 1;
    }
    return 0;
}
