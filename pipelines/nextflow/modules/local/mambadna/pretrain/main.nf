process MAMBADNA_PRETRAIN {
    tag "$meta.id"
    label 'process_high'
    label 'process_gpu'

    conda "${moduleDir}/environment.yml"
    // built from the repository's Dockerfile; the gpu profile swaps in Dockerfile.cuda's image
    container "mambadna:0.1.0"

    input:
    tuple val(meta), path(genome)

    output:
    tuple val(meta), path("${prefix}.safetensors")      , emit: model
    tuple val(meta), path("${prefix}.state.safetensors"), emit: state
    tuple val(meta), path("${prefix}.metrics.tsv")      , emit: metrics
    tuple val(meta), path("${prefix}.metrics.svg")      , emit: plot
    path "versions.yml"                                 , emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    def device = task.accelerator?.request ? 'cuda' : 'cpu'
    """
    mambadna pretrain \\
        $args \\
        -t $task.cpus \\
        -x $device \\
        --metrics ${prefix}.metrics.tsv \\
        -o ${prefix}.safetensors \\
        $genome

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mambadna: \$(mambadna --version | sed 's/^mambadna //')
    END_VERSIONS
    """

    stub:
    def args = task.ext.args ?: ''
    prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.safetensors
    touch ${prefix}.state.safetensors
    touch ${prefix}.metrics.tsv
    touch ${prefix}.metrics.svg

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        mambadna: \$(mambadna --version | sed 's/^mambadna //')
    END_VERSIONS
    """
}
