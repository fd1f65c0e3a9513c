/* The state shared by the two halves of the torch.save reader: pth_unpickle.c answers the pickle
 * machine's requests (the allow-list, storages, tensors) and pth.c reads the archive, picks the state
 * dict and builds the tensor table. Internal to src/io. */
#ifndef VITQ_IO_PTH_READER_H
#define VITQ_IO_PTH_READER_H

#include "io/array.h"
#include "io/pickle.h"
#include "io/zip.h"

/* Tags of the host's objects in the pickle graph. */
enum { VITQ_I_PTH_X_STORAGE = 1, VITQ_I_PTH_X_TENSOR, VITQ_I_PTH_X_OBJECT };

/* Tensors in a state dict: ample for any model, and a bound on the tables built for it. */
#define VITQ_I_PTH_MAX_TENSORS ((size_t)1 << 20)

typedef struct {
    const vitq_i_zip_entry *entry;
    vitq_i_elem elem; /* of the storage class (U8 for UntypedStorage) */
    size_t bytes;     /* == entry->size */
} vitq_i_pth_storage;

typedef struct {
    uint32_t storage;
    vitq_i_elem elem; /* the tensor's (the storage's, or _rebuild_tensor_v3's dtype) */
    int ndim;
    int64_t offset;
    int64_t size[VITQ_I_MAX_DIMS], stride[VITQ_I_MAX_DIMS];
    size_t at; /* pickle offset of its REDUCE, for messages */
} vitq_i_pth_tensor;

typedef struct {
    vitq_allocator alloc;
    const char *file;
    size_t n;       /* the archive's size */
    vitq_i_zip zip; /* over the caller's buffer or the file (io/zip.h) */
    const char *prefix; /* the archive's folder ("archive", or the saved file's stem) */
    size_t prefix_len;
    char what[512]; /* "<file>: <prefix>/data.pkl" */
    vitq_i_pth_storage *storages;
    size_t num_storages, cap_storages;
    uint32_t *storage_of_entry; /* per zip entry: 1 + index into storages, 0: not loaded yet */
    vitq_i_pth_tensor *tensors;
    size_t num_tensors, cap_tensors;
    size_t pkl_size;
    uint8_t *pkl_copy; /* data.pkl read from a file (the pickle's strings point into it) */
    uint8_t *holds; /* per pickle object: 0 not looked at, 1 a dict holding no tensor, 2 one holding tensors */
} vitq_i_pth_reader;

/* The hooks through which the pickle machine asks reader p for globals, calls, storages and BUILDs. */
void vitq_i_pth_hooks(vitq_i_pth_reader *p, vitq_i_pk_hooks *hooks);
/* VITQ_OK when zip entry e is stored (torch.save never compresses), else VITQ_ERR_UNSUPPORTED naming it. */
vitq_status vitq_i_pth_need_stored(const vitq_i_pth_reader *p, const vitq_i_zip_entry *e);
/* 1 when pickle object o is the string s. */
int vitq_i_pth_str_is(const vitq_i_pk_obj *o, const char *s);

#endif
