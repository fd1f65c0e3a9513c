/* PyTorch checkpoints (.pth, .pt, pytorch_model.bin as torch.save writes them since PyTorch 1.6): a
 * zip archive (io/zip.h) holding <archive>/data.pkl, a pickle of the saved object, and one stored
 * entry <archive>/data/<key> per storage. The pickle is run by io/pickle.h, which executes nothing;
 * this file answers its requests from a fixed allow-list and turns the result into the tensor table
 * the safetensors reader fills (io/safetensors.h), so everything downstream works unchanged.
 *
 * Allowed pickle globals (anything else is VITQ_ERR_UNSAFE naming it: "pickle global 'os.system' is
 * not allowed in a state dict: vitq never executes code from a file"):
 *   collections.OrderedDict                 called with no arguments: an empty dict (BUILD state,
 *                                           OrderedDict's _metadata, is ignored)
 *   torch._utils._rebuild_tensor_v2         (storage, offset, size, stride, requires_grad, hooks
 *                                           [, metadata]): a tensor
 *   torch._utils._rebuild_tensor_v3         the same with a dtype before metadata (PyTorch >= 2.3
 *                                           for dtypes without a legacy storage class)
 *   torch._utils._rebuild_parameter         (tensor, requires_grad, hooks): the tensor
 *   torch._utils._rebuild_parameter_with_state  the same with a 4th argument that must be empty
 *   torch.<X>Storage                        Float Double Half BFloat16 Long Int Short Char Byte Bool
 *                                           Untyped (bytes), only inside persistent ids ('storage',
 *                                           type, key, location, numel); Complex and quantized
 *                                           storages are VITQ_ERR_DTYPE
 *   torch.<dtype>                           float32 ... uint64, only as _rebuild_tensor_v3's dtype
 *   argparse.Namespace                      created by NEWOBJ with no arguments (training scripts
 *                                           save their `args`); an inert object, its state ignored
 * Hooks must be empty and metadata may not set the conj or neg bit (VITQ_ERR_UNSUPPORTED).
 *
 * Which dict is the state dict: the top-level object must be a dict (else VITQ_ERR_FORMAT).
 *  1. If any of its values is a tensor, it is the state dict.
 *  2. Otherwise the first of the keys "state_dict", "model", "model_state_dict", "module",
 *     "model_ema", "ema" (in that order) that is present and whose value is a dict holding at least
 *     one tensor is the state dict (so a training checkpoint {"model": ..., "optimizer": ...,
 *     "epoch": ...} gives its "model").
 *  3. Otherwise VITQ_ERR_FORMAT listing the top-level keys.
 * In the state dict, every value that is a tensor (or Parameter) becomes a tensor named by its key;
 * other values (ints, strings, None, lists) are ignored; a value that is itself a dict holding
 * tensors is VITQ_ERR_FORMAT (nested state dicts are not flattened), as are a key that is not a
 * string, contains NUL or appears twice. Names are kept as they are (a "module." prefix is the
 * loader's business).
 *
 * Tensors: the storage entry must hold exactly numel x element size bytes; offset, sizes and strides
 * must be non-negative and every element a tensor addresses must lie inside its storage
 * (VITQ_ERR_FORMAT naming the tensor and the pickle offset). Tensors sharing a storage are fine.
 * A C-contiguous tensor is a view into the caller's buffer (zero copy), or, for a file opened with
 * vitq_i_pth_open, read from the file when asked for (vitq_i_st_to_f32, vitq_i_st_read, vitq_i_st_pin,
 * as a safetensors file opened with vitq_i_st_open); any other stride order is copied into one owned
 * block (st->owned) at open, the copies in all at most the size of the file (so an expanded stride-0
 * tensor cannot blow up memory). A `byteorder` entry other than "little" is
 * VITQ_ERR_UNSUPPORTED (big-endian storages), a TorchScript archive (torch.jit.save) too.
 * Messages name the file, the archive entry and the pickle byte offset. */
#ifndef VITQ_IO_PTH_H
#define VITQ_IO_PTH_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "vitq.h"

/* 1 if buf looks like a torch zip archive, 2 if it is torch's legacy (pre-1.6, non-zip) pickle format
 * (or the older tar format), 0 otherwise. */
int vitq_i_pth_detect(const uint8_t *buf, size_t n);

/* Read the torch.save archive buf[0..n) into *out (see above; meta stays empty). The buffer must
 * outlive *out. The legacy formats give VITQ_ERR_UNSUPPORTED. On failure *out is zeroed. */
vitq_status vitq_i_pth_parse(const vitq_allocator *a, const uint8_t *buf, size_t n, const char *name,
                             vitq_i_safetensors *out);
/* The same checks and answers for the archive at `path` (`name` in messages; NULL: the path) without
 * holding it: only the zip's end records, central directory and local headers, data.pkl and the
 * byteorder entry are read, plus the storages of strided tensors (their copies). The file stays open
 * in *out (out->file, closed by vitq_i_st_free) and each tensor is read when it is asked for, so
 * loading peaks at what is built from it plus one tensor. The legacy formats are refused from their
 * first bytes. A read that fails is VITQ_ERR_IO naming the file. */
vitq_status vitq_i_pth_open(const vitq_allocator *a, const char *path, const char *name, vitq_i_safetensors *out);

#endif
