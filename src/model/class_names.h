/* Class names of a model (docs/formats.md, "Class names"): read with the configuration, kept by the
 * network, written into a quantized file's __metadata__ so that it keeps them without config.json. */
#ifndef VITQ_MODEL_CLASS_NAMES_H
#define VITQ_MODEL_CLASS_NAMES_H

#include "core/core.h"
#include "model/config.h"

/* The metadata key of a saved model's names: a JSON array of strings, class 0 first. */
#define VITQ_I_CLASS_NAMES_KEY "vitq.class_names"

/* The names of the `num_classes` classes, from the first source that gives any: config.json's
 * "id2label" (Hugging Face), "label_names" or "pretrained_cfg.label_names" (timm; an array, or an
 * object keyed by class index), then __metadata__ vitq.class_names. *out is one block from `a` (the
 * num_classes pointers, then the strings; free it with vitq_i_free) or NULL when no source names the
 * classes. A list that does not name each class exactly once (a count other than num_classes, a key
 * that is not an index in [0, num_classes), a value that is not a string) is VITQ_ERR_CONFIG naming
 * the file, the key and both counts: a wrong name beside a prediction would be a silent wrong answer. */
vitq_status vitq_i_class_names_read(const vitq_allocator *a, const vitq_i_config_inputs *in, int num_classes,
                                    char ***out);

/* `names[0..count)` as a JSON array (escaped), NUL-terminated, from `a`; NULL when out of memory. */
char *vitq_i_class_names_json(const vitq_allocator *a, char *const *names, int count);

#endif
